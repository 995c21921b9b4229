"""Register- and sentence-map checks: one set, read by the config check and by compile_device."""

from __future__ import annotations

import pytest

from drivers.regmap import compile_device
from drivers.spec import Device, RegisterMap, SentenceMap
from drivers.spec_checks import register_map_issues, sentence_map_issues

DEV = Device(bus="b", map="m", unit=1, unwired=[3])


def _map(**extra: object) -> RegisterMap:
    fields = [
        {"name": "status", "address": 0},
        {"name": "counter", "address": 1},
        {"name": "value", "address": 2, "type": "float32"},
    ]
    return RegisterMap.model_validate({"fields": fields, **extra})


def test_a_counter_naming_no_field_is_refused_at_compile_with_its_path() -> None:
    m = _map(counter={"field": "ticks", "applies_to": ["value"]})
    with pytest.raises(ValueError, match=r"maps\.m\.counter\.field: no field named 'ticks'"):
        compile_device("d", DEV, m)
    assert [i.path for i in register_map_issues("maps.m", m)] == ["maps.m.counter.field"]


def test_a_rule_naming_no_field_and_an_unwired_analog_input_are_refused_at_compile() -> None:
    rule = {"source": "status", "mask": 1, "quality": "bad", "applies_to": ["nope"]}
    with pytest.raises(ValueError, match=r"quality_rules\[0\]\.applies_to: no field named 'nope'"):
        compile_device("d", DEV, _map(quality_rules=[rule]))
    ai = RegisterMap.model_validate(
        {"fields": [{"name": "spare", "address": 3, "analog": {"eng_min": 0, "eng_max": 1}}]}
    )
    with pytest.raises(ValueError, match=r"fields\[0\]\.address: analog input 3 is unwired"):
        compile_device("d", DEV, ai)


def test_map_issues_name_the_key_a_user_edits() -> None:
    m = RegisterMap.model_validate(
        {
            "fields": [
                {"name": "a", "address": 0, "type": "float32", "bits": {40: "hi"}},
                {"name": "a", "address": 1, "word_order": "CDAB", "scale": 0.0},
            ]
        }
    )
    got = {(i.path, i.message.split(" ")[0]) for i in register_map_issues("maps.m", m)}
    assert got == {
        ("maps.m.fields[1].name", "duplicate"),
        ("maps.m.fields[0].bits", "bit"),
        ("maps.m.fields[1].word_order", "a"),
        ("maps.m.fields[1].scale", "|scale|"),
        ("maps.m.fields[1].address", "registers"),
    }
    s = SentenceMap.model_validate(
        {"fields": [{"name": "x", "position": 0}, {"name": "x", "position": 1}]}
    )
    assert [i.path for i in sentence_map_issues("sentences.s", s)] == ["sentences.s.fields[1].name"]
