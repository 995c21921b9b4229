"""Operator-grade alarms: lifecycle (`states`), config rules (`policy`), EEMUA KPIs (`kpi`),
the live manager and its command channels (`manager`, `control`, `mqtt_link`)."""
