"""Engine services a method can ask for by name (``Method.services``), built by the engine, never the method.

A provider turns a :class:`ServiceRequest` into the service object a method reads through
``ctx.service(name)``: e.g. ``reference_data`` (ZSCL's reference images and captions) or ``synthetic_data``
(GIFT's generated image-prompt pairs). Providers live with the data they load and register here by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from clbench.benchmark import Benchmark, Transforms
from clbench.errors import UserError


@dataclass
class ServiceRequest:
    """What a provider may read to build a service for one run."""

    name: str
    method: str
    method_config: Any
    benchmark: Benchmark
    transforms: Transforms
    device: torch.device
    seed: int
    batch_size: int
    quiet: bool = False  # the run was asked for no progress output


PROVIDERS: dict[str, Callable[[ServiceRequest], Any]] = {}


def register_service(name: str) -> Callable[[Callable[[ServiceRequest], Any]], Callable[[ServiceRequest], Any]]:
    def decorator(fn: Callable[[ServiceRequest], Any]) -> Callable[[ServiceRequest], Any]:
        PROVIDERS[name] = fn
        return fn

    return decorator


def provide(request: ServiceRequest) -> Any:
    """The service for one run: the user's configured source, else the benchmark's own, else the provider's.

    A provider may carry ``user_configured(request) -> bool`` (e.g. ``zscl.ref_images`` is set): then the user's
    data wins over what the benchmark offers (the world's reference corpus).
    """
    if request.name not in PROVIDERS:
        try:  # built-in providers live in the module named after the service
            importlib.import_module(f"clbench.{request.name}")
        except ModuleNotFoundError:
            pass
    provider = PROVIDERS.get(request.name)
    own = request.benchmark.info.get("services", {})
    user_first = provider is not None and getattr(provider, "user_configured", lambda r: False)(request)
    if request.name in own and not user_first:
        service = own[request.name]
        return service(request) if callable(service) else service
    if provider is None:
        raise UserError(f"method {request.method} needs the {request.name!r} service, which this install lacks")
    return provider(request)
