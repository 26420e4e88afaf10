"""One source for the chart's settings: values.yaml generates values.schema.json and the
chart README (fresh in the repository), and every NOTIFQ_* variable the templates set is
a settings field while every settings field has a chart value (or a stated reason not to).
"""

from __future__ import annotations

import inspect
import re

import chart_schema
from chart_schema import CHART
from pydantic_settings import BaseSettings

from notifq.core import settings

NOT_IN_CHART = {
    "NOTIFQ_MOCK_LOG_DIR": "test hook: the mock's delivery log for fault tests",
    "NOTIFQ_MOCK_OUTAGE_FILE": "test hook: simulates a provider outage",
    "NOTIFQ_NAIVE_COUNTER": "benchmark only: the reference's hot counter row",
    "NOTIFQ_SCALE_MIN_REPLICAS": "set per worker Deployment by annotation (worker.autoscaling)",
    "NOTIFQ_SCALE_MAX_REPLICAS": "set per worker Deployment by annotation (worker.autoscaling)",
    "NOTIFQ_SCALE_TARGET_BACKLOG": "set per worker Deployment by annotation (worker.autoscaling)",
    "NOTIFQ_SCALE_ACTIVATION_BACKLOG": "set per worker Deployment by annotation",
    "NOTIFQ_REPORTS_HOST": "all addresses in a pod; api.extraEnv for an IPv6-only network",
    "NOTIFQ_REPORTS_CLIENT_CA_FILE": "read from the API server's ConfigMap; or api.extraEnv",
    "NOTIFQ_REPORTS_CERT_FILE": "self-signed at start; or api.extraEnv with a mounted Secret",
    "NOTIFQ_REPORTS_KEY_FILE": "self-signed at start; or api.extraEnv with a mounted Secret",
}


def settings_variables() -> set[str]:
    classes = [
        c
        for name, c in inspect.getmembers(settings, inspect.isclass)
        if name.endswith("Settings")
        and c.__module__ == settings.__name__
        and issubclass(c, BaseSettings)
    ]
    return {f"NOTIFQ_{field.upper()}" for c in classes for field in c.model_fields}


def template_variables() -> set[str]:
    found: set[str] = set()
    for path in (CHART / "templates").rglob("*"):
        if path.is_file():
            found |= set(re.findall(r"NOTIFQ_[A-Z0-9_]+", path.read_text()))
    return found


def test_generated_files_are_fresh() -> None:
    for path, body in chart_schema.outputs().items():
        assert path.read_text() == body, f"{path.name} is stale: run `make chart-schema`"


def test_every_template_variable_is_a_setting() -> None:
    assert template_variables() - settings_variables() == set()


def test_every_setting_has_a_chart_value() -> None:
    missing = settings_variables() - template_variables() - NOT_IN_CHART.keys()
    assert missing == set()
    assert NOT_IN_CHART.keys() <= settings_variables()  # no stale exemptions


def test_generator_types_descriptions_and_keywords() -> None:
    text = """# @schema-root {"required": ["a"]}
a:
  # -- How many.
  # spread over two lines
  # @schema {"minimum": 1}
  n: 3
  # -- Free-form.
  # @schema {"type": "object"}
  extra: {x: 1}
  port: null
  # @schema {"enum": ["x", "y"]}
  mode: x
flag: true
ratio: 0.5
items: []
"""
    out = chart_schema.schema(text)
    assert out["required"] == ["a"] and out["additionalProperties"] is False
    a = out["properties"]["a"]
    assert a["additionalProperties"] is False
    assert a["properties"]["n"] == {
        "type": "integer",
        "minimum": 1,
        "description": "How many. spread over two lines",
    }
    assert a["properties"]["extra"] == {"type": "object", "description": "Free-form."}
    assert a["properties"]["port"] == {}
    assert a["properties"]["mode"] == {"type": "string", "enum": ["x", "y"]}
    assert out["properties"]["flag"] == {"type": "boolean"}
    assert out["properties"]["ratio"] == {"type": "number"}
    assert out["properties"]["items"] == {"type": "array"}
