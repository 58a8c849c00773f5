"""Seed files (SPEC section 7): parsed and checked completely, then applied in one transaction.

Every problem is reported as ``FILE: key.path: what is wrong``; nothing is written unless the
whole file is valid.  Applying a file twice changes nothing the second time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from couponsvc.adapters import admin
from couponsvc.domain.codes import DEFAULT_PATTERN, NewCodes, check_capacity, code_problem, generate_codes
from couponsvc.domain.errors import ConfigurationError
from couponsvc.domain.model import INT64_MAX, class_name_key
from couponsvc.domain.tokens import token_hash

DEFAULT_TOKEN_LIFETIME = timedelta(days=365)


class SeedError(ConfigurationError):
    pass


@dataclass
class ClassSeed:
    key: str
    name: str
    values: dict[str, Any]
    codes: list[tuple[str, str]]  # (code, key path)
    generate: int
    pattern: str


@dataclass
class CustomerSeed:
    id: int
    name: str
    # (key, id, number, currency, notification email)
    accounts: list[tuple[str, int, str, str, str | None]] = field(default_factory=list)
    classes: list[ClassSeed] = field(default_factory=list)


@dataclass
class UserSeed:
    key: str
    name: str
    customers: list[int]
    tokens: list[tuple[str, str, datetime | None]]  # (key, token, expires_at)


@dataclass
class Seed:
    developer_tokens: list[tuple[str, str, bool]] = field(default_factory=list)  # (token, name, enabled)
    customers: list[CustomerSeed] = field(default_factory=list)
    users: list[UserSeed] = field(default_factory=list)


class _Reader:
    """Typed access to a JSON object with the key path in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> SeedError:
        return SeedError(f"{self.source}: {key or 'the document'}: {message}")

    def obj(self, value: Any, key: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "must be an object")
        for k in value:
            if k not in required and k not in optional:
                raise self.fail(f"{key}.{k}" if key else k,
                                f"unknown key; allowed here: {', '.join(required + optional)}")
        for k in required:
            if k not in value:
                raise self.fail(f"{key}.{k}" if key else k, "is required")
        return value

    def list(self, value: Any, key: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, "must be a list")
        return value

    def text(self, value: Any, key: str, *, max_len: int = 255, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string")
        if len(value) > max_len or not value.isprintable():
            raise self.fail(key, f"must be printable and at most {max_len} characters")
        return value

    def id(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT64_MAX:
            raise self.fail(key, "must be a positive whole number")
        return value

    def number(self, value: Any, key: str, *, maximum: float | None = None) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise self.fail(key, "must be a number ≥ 0 or null")  # also refuses NaN and Infinity
        if maximum is not None and value > maximum:
            raise self.fail(key, f"must be at most {maximum}")
        return float(value)

    def count(self, value: Any, key: str, maximum: int) -> int:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
            raise self.fail(key, f"must be a whole number from 0 to {maximum:,}")
        return value

    def date(self, value: Any, key: str) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, 'must be an ISO-8601 date-time such as "2027-12-31T23:59:59Z"')
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self.fail(key, f'{value!r} is not an ISO-8601 date-time such as "2027-12-31T23:59:59Z"') from None
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed

    def template(self, value: Any, key: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > 100_000:
            raise self.fail(key, "must be a non-empty template text of at most 100,000 characters")
        from couponsvc.adapters.mail.message import check_template

        try:
            check_template(value)
        except ConfigurationError as exc:
            raise self.fail(key, str(exc)) from None
        return value

    def email(self, value: Any, key: str) -> str | None:
        if value is None:
            return None
        from couponsvc.domain.emails import is_valid_address, trim

        if not isinstance(value, str) or not is_valid_address(trim(value)):
            raise self.fail(key, "must be a valid email address or null")
        return trim(value)

    def feature_id(self, value: Any, key: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 2**31 - 1:
            raise self.fail(key, "must be a positive whole number (an int: at most 2147483647) or null")
        return value

    def currency(self, value: Any, key: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
            raise self.fail(key, 'must be a three-letter currency code such as "USD"')
        return value.upper()


_CLASS_KEYS = ("coupon_type", "amount", "currency_code", "spend_threshold", "percent_off", "active_duration",
               "start_date", "end_date", "expiration_date", "codes", "generate", "code_pattern", "template",
               "feature_id")


def parse_seed(document: Any, source: str) -> Seed:
    r = _Reader(source)
    top = r.obj(document, "", (), ("developer_tokens", "customers", "users"))
    seed = Seed()
    for i, item in enumerate(r.list(top.get("developer_tokens"), "developer_tokens")):
        key = f"developer_tokens[{i}]"
        d = r.obj(item, key, ("token", "name"), ("enabled",))
        enabled = d.get("enabled", True)
        if not isinstance(enabled, bool):
            raise r.fail(f"{key}.enabled", "must be true or false")
        seed.developer_tokens.append((str(r.text(d["token"], f"{key}.token", max_len=512)),
                                      str(r.text(d["name"], f"{key}.name")), enabled))

    seen_codes: dict[str, str] = {}
    seen_accounts: dict[int, str] = {}
    seen_customers: dict[int, str] = {}
    for i, item in enumerate(r.list(top.get("customers"), "customers")):
        key = f"customers[{i}]"
        d = r.obj(item, key, ("id", "name"), ("accounts", "coupon_classes"))
        customer = CustomerSeed(r.id(d["id"], f"{key}.id"), str(r.text(d["name"], f"{key}.name")))
        if customer.id in seen_customers:
            raise r.fail(f"{key}.id", f"customer {customer.id} is already defined at {seen_customers[customer.id]}")
        seen_customers[customer.id] = key
        for j, acc in enumerate(r.list(d.get("accounts"), f"{key}.accounts")):
            akey = f"{key}.accounts[{j}]"
            a = r.obj(acc, akey, ("id",), ("number", "currency_code", "email"))
            account_id = r.id(a["id"], f"{akey}.id")
            if account_id in seen_accounts:
                raise r.fail(f"{akey}.id", f"account {account_id} is already defined at {seen_accounts[account_id]}")
            seen_accounts[account_id] = akey
            number = r.text(a.get("number"), f"{akey}.number", max_len=100, optional=True) or f"A{account_id}"
            currency = r.currency(a.get("currency_code", "USD"), f"{akey}.currency_code")
            email = r.email(a.get("email"), f"{akey}.email")
            customer.accounts.append((akey, account_id, number, str(currency), email))
        class_keys: dict[str, str] = {}
        for j, cls in enumerate(r.list(d.get("coupon_classes"), f"{key}.coupon_classes")):
            ckey = f"{key}.coupon_classes[{j}]"
            customer.classes.append(_parse_class(r, cls, ckey, class_keys, seen_codes))
        seed.customers.append(customer)

    seen_users: dict[str, str] = {}
    for i, item in enumerate(r.list(top.get("users"), "users")):
        key = f"users[{i}]"
        d = r.obj(item, key, ("name",), ("customers", "access_tokens"))
        user_name = str(r.text(d["name"], f"{key}.name"))
        if user_name in seen_users:
            raise r.fail(f"{key}.name", f"user {user_name!r} is already defined at {seen_users[user_name]}")
        seen_users[user_name] = key
        links = [r.id(v, f"{key}.customers[{k}]") for k, v in enumerate(r.list(d.get("customers"), f"{key}.customers"))]
        tokens = []
        for k, tok in enumerate(r.list(d.get("access_tokens"), f"{key}.access_tokens")):
            tkey = f"{key}.access_tokens[{k}]"
            tk = r.obj(tok, tkey, ("token",), ("expires_at",))
            tokens.append((tkey, str(r.text(tk["token"], f"{tkey}.token", max_len=512)),
                           r.date(tk.get("expires_at"), f"{tkey}.expires_at")))
        seed.users.append(UserSeed(key, user_name, links, tokens))
    return seed


def _parse_class(r: _Reader, cls: Any, ckey: str, class_keys: dict[str, str],
                 seen_codes: dict[str, str]) -> ClassSeed:
    c = r.obj(cls, ckey, ("name",), _CLASS_KEYS)
    name = str(r.text(c["name"], f"{ckey}.name")).strip()
    name_key = class_name_key(name)
    if name_key in class_keys:
        raise r.fail(f"{ckey}.name", f"{name!r} is already defined at {class_keys[name_key]} (names ignore case)")
    class_keys[name_key] = ckey
    values: dict[str, Any] = {
        "name": name,
        "coupon_type": r.text(c.get("coupon_type"), f"{ckey}.coupon_type", max_len=100, optional=True),
        "amount": r.number(c.get("amount"), f"{ckey}.amount"),
        "currency_code": r.currency(c.get("currency_code"), f"{ckey}.currency_code", optional=True),
        "spend_threshold": r.number(c.get("spend_threshold"), f"{ckey}.spend_threshold"),
        "percent_off": r.number(c.get("percent_off"), f"{ckey}.percent_off", maximum=100),
        "active_duration": r.count(c.get("active_duration"), f"{ckey}.active_duration", 36500)
        if c.get("active_duration") is not None else None,
        "start_date": r.date(c.get("start_date"), f"{ckey}.start_date"),
        "end_date": r.date(c.get("end_date"), f"{ckey}.end_date"),
        "expiration_date": r.date(c.get("expiration_date"), f"{ckey}.expiration_date"),
        "template": r.template(c.get("template"), f"{ckey}.template"),
        "feature_id": r.feature_id(c.get("feature_id"), f"{ckey}.feature_id"),
    }
    if values["amount"] is not None and values["currency_code"] is None:
        raise r.fail(f"{ckey}.currency_code", "is required when amount is given")
    if values["start_date"] and values["end_date"] and values["end_date"] < values["start_date"]:
        raise r.fail(f"{ckey}.end_date", "is before start_date")
    codes = []
    for k, code in enumerate(r.list(c.get("codes"), f"{ckey}.codes")):
        kkey = f"{ckey}.codes[{k}]"
        if not isinstance(code, str):
            raise r.fail(kkey, "must be a string")
        problem = code_problem(code)
        if problem:
            raise r.fail(kkey, problem)
        if code in seen_codes:
            raise r.fail(kkey, f"{code!r} is already listed at {seen_codes[code]}")
        seen_codes[code] = kkey
        codes.append((code, kkey))
    generate = r.count(c.get("generate"), f"{ckey}.generate", 10_000_000)
    pattern = c.get("code_pattern") or DEFAULT_PATTERN
    if not isinstance(pattern, str):
        raise r.fail(f"{ckey}.code_pattern", "must be a string")
    if generate:
        try:
            check_capacity(pattern, generate)
        except ValueError as exc:
            raise r.fail(f"{ckey}.code_pattern", str(exc)) from None
    return ClassSeed(ckey, name, values, codes, generate, pattern)


def read_seed_file(path: Path) -> Seed:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise SeedError(f"{path}: cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SeedError(f"{path}: is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeedError(f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}") from exc
    return parse_seed(document, str(path))


@dataclass
class SeedReport:
    customers: int = 0
    classes: int = 0
    codes_added: int = 0
    codes_generated: int = 0
    users: int = 0
    tokens: int = 0


def apply_seed(conn: Connection, seed: Seed, now: datetime, source: str) -> SeedReport:
    """Apply inside the caller's transaction; raises SeedError (the caller rolls back) on conflicts."""
    report = SeedReport()
    for token, name, enabled in seed.developer_tokens:
        admin.upsert_developer_token(conn, name, token_hash(token), enabled, now)
        report.tokens += 1
    for customer in seed.customers:
        admin.upsert_customer(conn, customer.id, customer.name)
        report.customers += 1
        for akey, account_id, number, currency, email in customer.accounts:
            owner = admin.account_owner(conn, account_id)
            if owner is not None and owner != customer.id:
                raise SeedError(f"{source}: {akey}.id: account {account_id} belongs to customer {owner}")
            admin.upsert_account(conn, account_id, customer.id, number, currency, email)
        for cls in customer.classes:
            class_id = admin.upsert_class(conn, customer.id, class_name_key(cls.name), cls.values)
            report.classes += 1
            result = admin.insert_codes(conn, class_id, NewCodes([code for code, _ in cls.codes]), "seed", now)
            if result.conflicts:
                where = dict(cls.codes)
                first = result.conflicts[0]
                raise SeedError(f"{source}: {where[first]}: code {first!r} already belongs to another coupon class")
            report.codes_added += result.inserted
            have = admin.count_codes(conn, class_id, origin="seed-generated")
            if cls.generate > have:
                report.codes_generated += admin.generate_into_class(
                    conn, class_id, partial(generate_codes, cls.pattern), cls.generate - have, "seed-generated", now)
    for user in seed.users:
        user_id = admin.ensure_user(conn, user.name)
        report.users += 1
        missing = [cid for cid in user.customers if not admin.customer_exists(conn, cid)]
        if missing:
            raise SeedError(f"{source}: {user.key}.customers: customer {missing[0]} is not defined")
        admin.link_customers(conn, user_id, user.customers)
        for tkey, token, expires_at in user.tokens:
            h = token_hash(token)
            owner = admin.access_token_owner(conn, h)
            if owner is not None and owner != user_id:
                raise SeedError(f"{source}: {tkey}.token: this token is already issued to another user")
            admin.put_access_token(conn, user_id, h, expires_at, now, now + DEFAULT_TOKEN_LIFETIME)
            report.tokens += 1
    return report

