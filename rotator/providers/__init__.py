"""Provider adapters, looked up by the name used in the targets file.

The registry maps names to ``module:Class`` strings and imports lazily, so a process that
rotates only Adobe connections never imports botocore.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, cast

from rotator.providers.base import Provider, ProviderContext

REGISTRY: dict[str, str] = {
    "adobe": "rotator.providers.adobe:AdobeFlowService",
    "appflow": "rotator.providers.appflow:AppFlow",
    "uipath": "rotator.providers.uipath:UiPathRobotAccounts",
    "commercelayer": "rotator.providers.commercelayer:CommerceLayer",
    "ciphertrust": "rotator.providers.ciphertrust:CipherTrust",
}


def provider_names() -> list[str]:
    return sorted(REGISTRY)


def load_provider(name: str, context: ProviderContext) -> Provider:
    module_name, _, class_name = REGISTRY[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cast(Provider, cls(context))


def option_problems(
    name: str, options: Mapping[str, Any], credentials: Mapping[str, Any]
) -> list[str]:
    """What an adapter's ``check_options`` finds wrong with a target, one line each (names,
    never values); adapters without the hook check nothing here."""
    module_name, _, class_name = REGISTRY[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    check = getattr(cls, "check_options", None)
    return list(check(options, credentials)) if check is not None else []
