"""Marked-block edits of ossec.conf files that hold several <ossec_config> elements."""

from __future__ import annotations

import re

import pytest

from iocscope.errors import ConfigError
from iocscope.wazuh import ossec_conf
from iocscope.wazuh.ossec_conf import (
    ActiveResponseOptions,
    IntegrationOptions,
    find_block,
    remove_block,
    set_block,
    set_lists_block,
)

# A manager's file: a header comment, a commented-out element that must be
# ignored, two top-level <ossec_config> elements.
CONF = """<!--
  Wazuh - Manager - Default configuration for ubuntu 22.04
  <ossec_config> in a comment is not an element
-->

<ossec_config>
  <global>
    <jsonout_output>yes</jsonout_output>
  </global>

  <!-- <ruleset><list>etc/lists/old</list></ruleset> -->
  <ruleset>
    <!-- Default ruleset -->
    <decoder_dir>ruleset/decoders</decoder_dir>
    <rule_dir>ruleset/rules</rule_dir>
    <list>etc/lists/audit-keys</list>
    <rule_dir>etc/rules</rule_dir>
  </ruleset>
</ossec_config>

<ossec_config>
  <localfile>
    <log_format>syslog</log_format>
    <location>/var/log/auth.log</location>
  </localfile>
</ossec_config>
"""

BODY = "<integration>\n  <name>custom-iocscope</name>\n</integration>"


def _outside_comments(text: str, tag: str) -> int:
    return len(re.findall(rf"<{tag}>", ossec_conf.mask_comments(text)))


def test_set_block_inside_first_config() -> None:
    new = set_block(CONF, "integration", BODY)
    first_end = new.index("</ossec_config>")
    assert new.index("<!-- iocscope:begin integration -->") < first_end
    assert "  <integration>\n    <name>custom-iocscope</name>" in new
    assert remove_block(new, "integration") == CONF


def test_set_block_is_idempotent() -> None:
    once = set_block(CONF, "integration", BODY)
    assert set_block(once, "integration", BODY) == once


def test_set_block_replaces_in_place() -> None:
    once = set_block(CONF, "integration", BODY)
    twice = set_block(
        once, "integration", "<integration>\n  <name>custom-other</name>\n</integration>"
    )
    assert "custom-iocscope" not in twice
    assert twice.count("iocscope:begin integration") == 1
    assert twice.index("custom-other") == once.index("custom-iocscope")


def test_set_block_closing_tag_on_content_line() -> None:
    text = "<ossec_config><global/></ossec_config>\n"
    new = set_block(text, "integration", BODY)
    assert new.startswith("<ossec_config><global/>\n  <!-- iocscope:begin integration -->")
    assert new.endswith("<!-- iocscope:end integration -->\n</ossec_config>\n")


def test_set_block_without_config_element() -> None:
    with pytest.raises(ConfigError) as raised:
        set_block("<!-- <ossec_config></ossec_config> -->\n", "integration", BODY)
    assert str(raised.value) == (
        "ossec.conf has no <ossec_config> element outside comments: "
        "is this a Wazuh manager configuration?"
    )


def test_begin_marker_without_end() -> None:
    broken = CONF.replace("</global>", "</global>\n  <!-- iocscope:begin integration -->")
    with pytest.raises(ConfigError) as raised:
        set_block(broken, "integration", BODY)
    assert str(raised.value) == (
        "ossec.conf line 10 has '<!-- iocscope:begin integration -->' without "
        "'<!-- iocscope:end integration -->': remove the partial block by hand or restore a backup"
    )


def test_end_marker_without_begin() -> None:
    broken = CONF.replace("</global>", "</global>\n  <!-- iocscope:end lists -->")
    with pytest.raises(ConfigError) as raised:
        remove_block(broken, "lists")
    assert str(raised.value) == (
        "ossec.conf has '<!-- iocscope:end lists -->' without '<!-- iocscope:begin lists -->': "
        "remove the rest of the block by hand or restore a backup"
    )


def test_lists_go_into_existing_ruleset() -> None:
    new = set_lists_block(CONF, ["etc/lists/iocscope-ip"])
    ruleset = ossec_conf.find_elements(new, "ruleset")
    assert _outside_comments(new, "ruleset") == 1
    assert ruleset[0].children_text("list") == ["etc/lists/audit-keys", "etc/lists/iocscope-ip"]
    assert "    <list>etc/lists/iocscope-ip</list>\n" in new


def test_lists_block_is_idempotent() -> None:
    once = set_lists_block(CONF, ["etc/lists/iocscope-ip", "etc/lists/iocscope-url"])
    again = set_lists_block(once, ["etc/lists/iocscope-ip", "etc/lists/iocscope-url"])
    assert again == once


def test_lists_wrapped_when_no_ruleset() -> None:
    text = "<ossec_config>\n  <global/>\n</ossec_config>\n"
    new = set_lists_block(text, ["etc/lists/iocscope-ip"])
    assert ossec_conf.declared_lists(new) == {"etc/lists/iocscope-ip"}
    assert _outside_comments(new, "ruleset") == 1


def test_wrapped_lists_move_into_new_ruleset() -> None:
    text = "<ossec_config>\n  <global/>\n</ossec_config>\n"
    wrapped = set_lists_block(text, ["etc/lists/iocscope-ip"])
    with_ruleset = wrapped.replace(
        "  <global/>\n",
        "  <global/>\n  <ruleset>\n    <rule_dir>etc/rules</rule_dir>\n  </ruleset>\n",
    )
    moved = set_lists_block(with_ruleset, ["etc/lists/iocscope-ip"])
    assert _outside_comments(moved, "ruleset") == 1
    assert ossec_conf.declared_lists(moved) == {"etc/lists/iocscope-ip"}


def test_empty_lists_remove_block() -> None:
    once = set_lists_block(CONF, ["etc/lists/iocscope-ip"])
    assert set_lists_block(once, []) == CONF


def test_integration_has_no_secrets() -> None:
    text = ossec_conf.render_integration(IntegrationOptions(level=5))
    assert text == (
        "<integration>\n  <name>custom-iocscope</name>\n  <level>5</level>\n"
        "  <alert_format>json</alert_format>\n</integration>"
    )
    assert "api_key" not in text
    assert "hook_url" not in text


def test_integration_filters() -> None:
    options = IntegrationOptions(level=0, groups=("sshd", "web"), rule_ids=(5712, 31151))
    text = ossec_conf.render_integration(options)
    assert "<level>" not in text
    assert "  <group>sshd,web</group>\n" in text
    assert "  <rule_id>5712,31151</rule_id>\n" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"name": "ioc-enrich"},
            "invalid integration name 'ioc-enrich': integratord only runs custom integrations "
            "whose name starts with 'custom-'",
        ),
        ({"level": 17}, "invalid alert level 17: expected 0 to 16"),
        (
            {"groups": ("bad group",)},
            "invalid rule group 'bad group': use letters, digits, '_', '.' and '-' only",
        ),
        ({"rule_ids": (0,)}, "invalid integration rule ID 0: expected 1 to 999999"),
    ],
)
def test_integration_options_invalid(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        IntegrationOptions(**kwargs)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_active_response_needs_rule_ids() -> None:
    with pytest.raises(ConfigError) as raised:
        ActiveResponseOptions(())
    assert str(raised.value) == "an active response needs at least one rule ID"


def test_active_response_bound_to_rules() -> None:
    text = ossec_conf.render_active_response(ActiveResponseOptions((5712, 5763)))
    response = ossec_conf.find_elements(text, "active-response")[0]
    assert response.child_text("rules_id") == "5712,5763"
    assert response.child_text("location") == "server"
    assert response.child_text("disabled") == "no"
    assert response.child_text("level") is None


def test_find_elements_skips_comments() -> None:
    text = CONF.replace(
        "</global>",
        "</global>\n  <!-- <integration><name>old</name></integration> -->\n"
        "  <integration><name>custom-a</name></integration>\n"
        "  <integration><name>custom-b</name><level>3</integration>",
    )
    found = ossec_conf.find_elements(text, "integration")
    assert [element.child_text("name") for element in found] == ["custom-a", None]
    assert found[1].error is not None
    assert found[1].line == 12


def test_declared_lists_ignore_comments() -> None:
    assert ossec_conf.declared_lists(CONF) == {"etc/lists/audit-keys"}


def test_diff_empty_when_equal() -> None:
    assert ossec_conf.unified_diff(CONF, CONF, "ossec.conf") == ""
    changed = set_block(CONF, "integration", BODY)
    diff = ossec_conf.unified_diff(CONF, changed, "ossec.conf")
    assert "+  <!-- iocscope:begin integration -->" in diff


def test_find_block_returns_markers() -> None:
    new = set_block(CONF, "integration", BODY)
    block = find_block(new, "integration")
    assert block is not None
    assert block.startswith("  <!-- iocscope:begin integration -->\n")
    assert block.endswith("  <!-- iocscope:end integration -->\n")
