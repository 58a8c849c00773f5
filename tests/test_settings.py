"""Settings are validated at start, and a bad one names the variable at fault."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from lxml import etree

from couponsvc.domain.errors import ConfigurationError
from couponsvc.settings import load_settings
from tests.support.server import ServerProcess


def test_defaults_keep_everything_in_the_data_dir() -> None:
    s = load_settings({})
    assert s.database_url == "sqlite:///couponsvc-data/couponsvc.db"
    assert s.mail_url == "maildir://couponsvc-data/mail"
    assert (s.max_body_bytes, s.max_xml_depth, s.max_addresses_per_call) == (4 * 1024 * 1024, 32, 1000)
    assert s.public_url is None


def test_data_dir_moves_the_defaults() -> None:
    s = load_settings({"COUPONSVC_DATA_DIR": "/srv/coupons"})
    assert s.database_url == "sqlite:////srv/coupons/couponsvc.db"
    assert s.mail_url == "maildir:///srv/coupons/mail"


@pytest.mark.parametrize("key, value, needle", [
    ("DATABASE_URL", "mysql://x/y", "COUPONSVC_DATABASE_URL"),
    ("MAIL_URL", "http://relay:25", "COUPONSVC_MAIL_URL"),
    ("MAIL_URL", "smtp://relay", "host:port"),
    ("MAIL_URL", "smtp://relay:twenty-five", "port"),
    ("MAIL_URL", "maildir://", "folder"),
    ("MAIL_FROM", "not an address", "COUPONSVC_MAIL_FROM"),
    ("MAX_BODY_BYTES", "lots", "COUPONSVC_MAX_BODY_BYTES"),
    ("MAX_XML_DEPTH", "4", "between 8 and 256"),
    ("MAX_ADDRESSES_PER_CALL", "5000", "between 1 and 1000"),
    ("DELIVERY_TIMEOUT", "soon", "COUPONSVC_DELIVERY_TIMEOUT"),
    ("LOG_LEVEL", "LOUD", "COUPONSVC_LOG_LEVEL"),
    ("PUBLIC_URL", "coupons.example.com", "COUPONSVC_PUBLIC_URL"),
])
def test_bad_settings_name_the_variable(key: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        load_settings({f"COUPONSVC_{key}": value})


def test_postgres_scheme_alias() -> None:
    assert load_settings({"COUPONSVC_DATABASE_URL": "postgres://u@h:5432/d"}).database_url == "postgresql://u@h:5432/d"


def test_serve_refuses_a_bad_setting_with_its_name(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path, {"COUPONSVC_MAIL_URL": "ftp://nowhere"})
    result = proc.cli("serve", "--port", "1", check=False)
    assert result.returncode == 2
    assert "COUPONSVC_MAIL_URL" in result.stderr and "Traceback" not in result.stderr


def test_public_url_is_the_wsdl_address(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path, {"COUPONSVC_PUBLIC_URL": "https://coupons.example.com/"})
    proc.start()
    try:
        doc = etree.fromstring(httpx.get(f"{proc.soap_url}?singleWsdl").content)
    finally:
        proc.stop()
    assert doc.xpath("//*[local-name()='address']/@location") == [
        "https://coupons.example.com/Api/Billing/v13/CustomerBillingService.svc"]
