"""Pure parts of pyci.diagnostics: redaction, event formatting, object stripping."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from pyci import diagnostics as d


def test_redactor_masks_secrets_and_their_base64():
    red = d.Redactor(["hunter2-password"])
    b64 = base64.b64encode(b"hunter2-password").decode()
    assert red(f"pw=hunter2-password b64={b64}") == "pw=*** b64=***"


def test_redactor_masks_each_line_of_a_multiline_secret():
    red = d.Redactor(["line-one\nline-two"])
    assert red("x line-two y") == "x *** y"


def test_redactor_ignores_empty_and_tiny_secrets():
    red = d.Redactor(["", "a"])
    assert red("a banana") == "a banana"


def test_redactor_leaves_yaml_words_alone():
    # kind's bootstrap token Secret holds `true`: masked, every pod's YAML stopped parsing
    red = d.Redactor()
    red.add_secret_data({"usage-bootstrap-signing": "dHJ1ZQ==", "token": "czNjcjN0LXRva2Vu"})
    assert red("controller: true\ntoken: s3cr3t-token") == "controller: true\ntoken: ***"


def test_redactor_masks_a_named_secret_even_if_it_is_a_yaml_word():
    # only values read from cluster Secrets spare YAML words; a secret the user named is always masked
    assert _masked("TRUE") == "***"


def _masked(secret: str) -> str:
    return d.Redactor([secret])(secret)


def test_redactor_longest_first():
    red = d.Redactor(["secret", "secret-long"])
    assert red("secret-long") == "***"


def test_redactor_secret_data_decoded_and_encoded():
    red = d.Redactor()
    red.add_secret_data({"password": base64.b64encode(b"s3cr3t!").decode(), "bin": "!!notbase64!!", "e": ""})
    assert red("db password s3cr3t! ok") == "db password *** ok"
    assert red(base64.b64encode(b"s3cr3t!").decode()) == "***"
    assert red("!!notbase64!!") == "***"


@given(st.text(min_size=3, max_size=30), st.text(max_size=30), st.text(max_size=30))
def test_redactor_never_leaves_the_secret(secret, before, after):
    assert secret not in d.Redactor([secret])(before + secret + after).replace(d.MASK, "\0")


def test_parse_target():
    assert d.parse_target("deployment/default/web") == ("deployment", "default", "web")
    assert d.parse_target("Job/ns/migrate") == ("job", "ns", "migrate")
    assert d.parse_target("api") is None
    assert d.parse_target("service/default/web") is None


def test_format_events_sorted_by_best_time():
    events: list[dict[str, object]] = [
        {"lastTimestamp": "2026-11-22T10:00:03Z", "type": "Warning", "reason": "BackOff", "count": 4,
         "message": "Back-off\n restarting",
         "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "p"}},
        {"eventTime": "2026-11-22T10:00:01.000000Z", "type": "Normal", "reason": "Scheduled",
         "message": "assigned", "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "p"}},
        {"metadata": {"creationTimestamp": "2026-11-22T10:00:02Z"}, "type": "Normal", "reason": "Pulled",
         "message": "ok", "involvedObject": {"kind": "Pod", "name": "p"}},
    ]  # fmt: skip
    assert d.format_events(events).splitlines() == [
        "2026-11-22T10:00:01.000000Z Normal Scheduled Pod/ns/p: assigned",
        "2026-11-22T10:00:02Z Normal Pulled Pod/-/p: ok",
        "2026-11-22T10:00:03Z Warning BackOff Pod/ns/p (x4): Back-off restarting",
    ]
    assert d.format_events([]) == ""


def test_strip_object_drops_managed_fields_and_last_applied():
    obj = {
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "managedFields": [{"manager": "tilt"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "me"},
        },
    }
    out = d.strip_object(obj)
    assert out["metadata"] == {"name": "web", "annotations": {"keep": "me"}}
    assert "managedFields" in obj["metadata"]  # the input is left alone


def test_strip_object_masks_secret_values():
    out = d.strip_object({"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "djE="}})
    assert out["data"] == {"k": "***"}


def test_object_filename():
    assert d.object_filename("Deployment", "ns", "web") == "deployment-ns-web.yaml"


def test_kind_export_logs_tolerates_missing_kind(tmp_path):
    lines: list[str] = []
    assert not d.kind_export_logs("c", tmp_path / "k", lines.append, kind_bin=str(tmp_path / "no-kind"))
    assert lines and "kind export logs failed" in lines[0]


def test_to_yaml_redacts_values_and_stays_valid_yaml():
    import yaml

    red = d.Redactor(["topsecret"])
    obj = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"env": [{"name": "X", "value": "topsecret"}]}}
    text = d.to_yaml(obj, red)
    assert "topsecret" not in text
    assert yaml.safe_load(text)["spec"]["env"][0]["value"] == "***"
