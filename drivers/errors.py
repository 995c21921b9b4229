"""One error family for everything a bus can do wrong; pymodbus errors are mapped at entry.

DriverError
├── LinkDown        the connection is gone or could not be made (reconnect with backoff)
└── DeviceError     the link is fine, one unit is not (mark BAD, back off that unit)
    ├── NoResponse      silence until the timeout (after retries)
    ├── ExceptionReply  a Modbus exception code (`.code`)
    └── BadReply        a reply that does not fit the request
"""

from __future__ import annotations


class DriverError(Exception):
    pass


class LinkDown(DriverError):
    pass


class DeviceError(DriverError):
    pass


class NoResponse(DeviceError):
    pass


class ExceptionReply(DeviceError):
    def __init__(self, code: int) -> None:
        super().__init__(f"Modbus exception {code}")
        self.code = code


class BadReply(DeviceError):
    pass
