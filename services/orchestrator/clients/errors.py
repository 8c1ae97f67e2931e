"""What a failed upstream call means to the orchestrator's caller.

The status table (raildebug.grpc_runtime.errors) is read backwards, with one exception: an
upstream that refuses *our* credentials (UNAUTHENTICATED, PERMISSION_DENIED) is not the caller's
problem, so the caller is not told it is unauthenticated. It gets INTERNAL (Misconfigured) with
a message naming the upstream and the setting the operator has to fix.
"""

from __future__ import annotations

import grpc

from raildebug.errors import Misconfigured, PermissionDenied, RailDebugError, Unauthenticated
from raildebug.grpc_runtime.errors import error_from_rpc
from raildebug.settings import SERVICE_SETTINGS, OrchestratorSettings

UPSTREAM_TOKEN_VARIABLE = f"{OrchestratorSettings.model_config.get('env_prefix')}UPSTREAM_TOKEN"


def upstream_error(error: grpc.RpcError, upstream: str) -> RailDebugError:
    """The domain error for a failed call to `upstream` ("retriever" or "inference")."""
    mapped = error_from_rpc(error, upstream)
    if not isinstance(mapped, Unauthenticated | PermissionDenied):
        return mapped
    code = error.code().name if hasattr(error, "code") else "UNAUTHENTICATED"
    details = error.details() if hasattr(error, "details") else str(error)
    grants = f"{SERVICE_SETTINGS[upstream].model_config.get('env_prefix')}AUTH_TOKENS"
    if isinstance(mapped, Unauthenticated):
        fix = f"set {UPSTREAM_TOKEN_VARIABLE} to a token in the {upstream} service's {grants}"
    else:
        fix = (
            f"let the token in {UPSTREAM_TOKEN_VARIABLE} call this method: widen its grant in "
            f"the {upstream} service's {grants}"
        )
    return Misconfigured(
        f"the {upstream} service refused this orchestrator's credentials ({code}: {details}); "
        f"not your credentials: the operator must {fix}"
    )
