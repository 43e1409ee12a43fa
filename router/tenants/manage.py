"""``model-router keys create|list|revoke|rotate --file TENANTS.yaml``: edit the tenants file.

Every change is validated as a whole file and written atomically (a temporary file, then a rename),
so a gateway polling the file never reads half of it. The file keeps only key hashes; a new key is
returned once, to be printed once. (Comments in the file are not kept by a rewrite.)
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from router.tenants.keys import key_hash, new_key, new_key_id
from router.tenants.model import TenantsFile
from router.tenants.store import TenantsError, parse_tenants

TENANT_LIMIT_FLAGS = ("rpm", "tpm", "daily_budget_usd", "monthly_budget_usd")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"tenants": {}}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    parse_tenants(yaml.safe_dump(raw), str(path))  # refuse to edit a file that is already invalid
    raw.setdefault("tenants", {})
    return raw


def _write(path: Path, raw: dict[str, Any]) -> None:
    text = yaml.safe_dump(raw, sort_keys=False)
    TenantsFile.model_validate(yaml.safe_load(text))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the file is a credential store
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    tmp.replace(path)


def _find_key(raw: dict[str, Any], key_id: str) -> tuple[str, dict[str, Any]]:
    for name, tenant in raw["tenants"].items():
        for key in tenant.get("keys") or []:
            if key.get("id") == key_id:
                return name, key
    raise TenantsError(f"no key with id {key_id}")


@dataclass(frozen=True)
class NewKey:
    tenant: str
    key_id: str
    key: str  # shown once, never stored


def create_key(path: Path, tenant: str, *, name: str | None = None, **limits: Any) -> NewKey:
    raw = _read(path)
    entry = raw["tenants"].setdefault(tenant, {})
    for flag in TENANT_LIMIT_FLAGS:
        if limits.get(flag) is not None:
            entry[flag] = limits[flag]
    key = new_key()
    record: dict[str, Any] = {"id": new_key_id(), "sha256": key_hash(key), "created_at": _now()}
    if name:
        record["name"] = name
    entry.setdefault("keys", []).append(record)
    _write(path, raw)
    return NewKey(tenant, record["id"], key)


def revoke_key(path: Path, key_id: str) -> str:
    raw = _read(path)
    tenant, key = _find_key(raw, key_id)
    key.setdefault("revoked_at", None)
    if key["revoked_at"] is None:
        key["revoked_at"] = _now()
    _write(path, raw)
    return tenant


def rotate_key(path: Path, key_id: str, *, keep_old: bool = False) -> NewKey:
    """A new key with the old one's name and limits; the old one is revoked unless ``keep_old``."""
    raw = _read(path)
    tenant, old = _find_key(raw, key_id)
    if old.get("revoked_at"):
        raise TenantsError(f"key {key_id} is revoked; create a new key instead")
    key = new_key()
    record = {k: v for k, v in old.items() if k not in ("id", "sha256", "created_at", "revoked_at")}
    record = {"id": new_key_id(), "sha256": key_hash(key), "created_at": _now(), **record}
    raw["tenants"][tenant]["keys"].append(record)
    if not keep_old:
        old["revoked_at"] = _now()
    _write(path, raw)
    return NewKey(tenant, record["id"], key)


def list_keys(path: Path) -> list[dict[str, Any]]:
    """One row per key: tenant, id, name, created, revoked — never the hash."""
    parsed = parse_tenants(path.read_text(encoding="utf-8"), str(path)) if path.exists() else TenantsFile()
    rows = []
    for name, tenant in parsed.tenants.items():
        for key in tenant.keys:
            rows.append({"tenant": name, "id": key.id, "name": key.name, "created_at": key.created_at,
                         "revoked_at": key.revoked_at, "priority": tenant.priority})
    return rows
