"""Helm releases through helm-python-sdk (Helm v4's Go SDK in a wheel, no ``helm`` binary).

One hook wraps the SDK, so the launcher can swap it (for the Helm CLI, or a fake in a unit
test) without touching an operator. Values always travel as a dict, never as ``--set`` text.

Without a cluster (no ``kubernetes_conn_id`` and no ``KUBECONFIG``) the hook still renders,
lints and dry-runs a chart client-side; :meth:`HelmHook.install` and
:meth:`HelmHook.uninstall` then refuse with :class:`HelmClusterNotConfigured`.

The SDK's entry points used here (``helm_python`` 0.2.2, Helm SDK v4.2.3):

- ``Chart.load(path)`` -> ``Chart``; ``Chart.render(values, name=, namespace=, is_install=)``
  -> ``{template path: manifest text}`` (offline; validates ``values.schema.json``);
- ``lint(path, values, strict=, namespace=, kube_version=)`` -> ``{"messages": [{"severity",
  "path", "error"}], "errors": [...]}`` (findings are data, severity 3 is an error);
- ``Config(kubeconfig_path=|kubeconfig_content=, kube_context=, namespace=, storage_driver=)``
  with ``install(chart, name, values, dry_run="client"|None, timeout=, wait=)``,
  ``status(name)``, ``get_values(name)``, ``uninstall(name, ignore_not_found=)``;
- errors: ``HelmError`` and its subclasses (``HelmNotFoundError``, ``HelmKubeError``,
  ``HelmReleaseError``, ``HelmValuesError``, ``HelmRenderError``, ...), with ``.detail``.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml
from airflow.sdk import BaseHook

# Helm's lint severities (helm_python.lint): 1 info, 2 warning, 3 error.
LINT_ERROR = 3
DEFAULT_KUBE_VERSION = "v1.33.0"


class HelmHookError(Exception):
    """A Helm action failed; the message carries Helm's reason."""


class HelmClusterNotConfigured(HelmHookError):
    """No cluster is configured: only render, lint and dry-run installs are available."""


class HelmChartError(HelmHookError):
    """The chart does not render or lint with these values."""


class HelmReleaseConflict(HelmHookError):
    """A release of that name exists with other values, or is mid-operation."""


def _sdk():
    # Imported on first use: the native library loads in a few ms, but DAG files that only
    # name the hook should not pay for it at parse time.
    import helm_python

    return helm_python


def _reason(exc: Exception) -> str:
    return getattr(exc, "detail", None) or str(exc)


def _normalised(values: dict[str, Any] | None) -> Any:
    # Helm stores values as JSON; compare what it would store, not Python's view of it.
    return json.loads(json.dumps(values or {}, sort_keys=True))


def parse_manifests(rendered: dict[str, str] | str) -> list[dict[str, Any]]:
    """Kubernetes objects from Helm's output, in template order.

    :param rendered: ``{template path: text}`` from a render, or one multi-document manifest.
    :return: the objects, without empty documents and without ``NOTES.txt``.
    """
    if isinstance(rendered, str):
        texts = [rendered]
    else:
        texts = [text for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")]
    objects = []
    for text in texts:
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return objects


class HelmHook(BaseHook):
    """Render, lint, dry-run, install and uninstall Helm charts with helm-python-sdk.

    The cluster comes from a cncf-kubernetes connection (extras ``kube_config_path``,
    ``kube_config`` (inline kubeconfig), ``in_cluster``, ``cluster_context``), else from the
    ``KUBECONFIG`` environment variable; with neither, only render, lint and dry-run work.

    :param kubernetes_conn_id: a ``kubernetes`` connection; ``None`` = use ``KUBECONFIG``.
    :param timeout: seconds Helm may take for an install or uninstall.
    :param kube_version: Kubernetes version lint and dry-runs check the chart against.
    """

    conn_name_attr = "kubernetes_conn_id"
    default_conn_name = "kubernetes_default"
    conn_type = "kubernetes"
    hook_name = "Helm (helm-python-sdk)"

    def __init__(self, kubernetes_conn_id: str | None = None, *, timeout: int = 300,
                 kube_version: str = DEFAULT_KUBE_VERSION) -> None:
        super().__init__()
        self.kubernetes_conn_id = kubernetes_conn_id
        self.timeout = timeout
        self.kube_version = kube_version

    # -- cluster access
    def _cluster_options(self) -> dict[str, Any] | None:
        """``helm_python.Config`` keyword arguments for the configured cluster, or ``None``."""
        if self.kubernetes_conn_id:
            extras = self.get_connection(self.kubernetes_conn_id).extra_dejson

            def field(name: str) -> Any:
                # The provider still accepts the pre-2.3 prefixed form of its extras.
                return extras.get(name) or extras.get(f"extra__kubernetes__{name}") or None

            options: dict[str, Any] = {}
            if field("cluster_context"):
                options["kube_context"] = field("cluster_context")
            if field("kube_config_path"):
                options["kubeconfig_path"] = os.path.expanduser(field("kube_config_path"))
            elif field("kube_config"):
                content = field("kube_config")
                options["kubeconfig_content"] = json.dumps(content) if isinstance(content, dict) else content
            elif str(field("in_cluster")).lower() not in ("true", "1"):
                raise HelmClusterNotConfigured(
                    f"connection {self.kubernetes_conn_id!r} names no cluster: set one of the extras "
                    "kube_config_path, kube_config or in_cluster")
            # in_cluster: no kubeconfig, so the SDK falls back to the pod's service account.
            return options
        kubeconfig = os.environ.get("KUBECONFIG")
        if kubeconfig:
            # Passed explicitly: the Go library reads the environment once, when it loads, so a
            # KUBECONFIG set later in this process would not reach it. A ':'-separated list
            # cannot be passed as one path; the library merges it as kubectl does, provided it
            # was in the environment when the process started.
            return {} if os.pathsep in kubeconfig else {"kubeconfig_path": kubeconfig}
        return None

    def require_cluster(self) -> None:
        """Fail unless install and uninstall can run.

        :raises HelmClusterNotConfigured: naming what was looked for (the connection id, or
            ``KUBECONFIG`` when no connection is set) and why it is not usable.
        """
        if self._cluster_options() is None:
            raise HelmClusterNotConfigured(
                "no Kubernetes cluster configured for the helm launcher: kubernetes_conn_id is not set in "
                "hatchway_jobs_config and KUBECONFIG is not set in the worker's environment; set one of them "
                "(a kubernetes connection with kube_config_path, kube_config or in_cluster)")

    def has_cluster(self) -> bool:
        """Whether install and uninstall can run (a connection or ``KUBECONFIG`` is configured)."""
        try:
            return self._cluster_options() is not None
        except HelmClusterNotConfigured:
            return False

    @contextmanager
    def _config(self, namespace: str) -> Iterator[Any]:
        options = self._cluster_options()
        if options is None:
            raise HelmClusterNotConfigured(
                "no Kubernetes cluster configured (set kubernetes_conn_id or KUBECONFIG): "
                "only render, lint and dry_run_install are available")
        with _sdk().Config(namespace=namespace, **options) as cfg:
            yield cfg

    def get_conn(self) -> Any:
        """:return: an open ``helm_python.Config`` for the configured cluster (close it when done)."""
        options = self._cluster_options()
        if options is None:
            raise HelmClusterNotConfigured("no Kubernetes cluster configured (set kubernetes_conn_id or KUBECONFIG)")
        return _sdk().Config(**options)

    # -- offline
    def render(self, chart_path: str | Path, values: dict[str, Any], release: str,
               namespace: str) -> list[dict[str, Any]]:
        """Render the chart offline, as ``helm template`` would for an install.

        :param chart_path: chart directory or ``.tgz``.
        :param values: the release's values.
        :param release: release name.
        :param namespace: release namespace.
        :return: the Kubernetes objects.
        :raises HelmChartError: the values break the chart's schema or a template fails.
        """
        sdk = _sdk()
        try:
            sdk.validate_release_name(release)
            with sdk.Chart.load(str(chart_path)) as chart:
                rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
        except sdk.HelmError as exc:
            raise HelmChartError(f"chart {Path(chart_path).name} does not render for release {release}: "
                                 f"{_reason(exc)}") from exc
        return parse_manifests(rendered)

    def lint(self, chart_path: str | Path, values: dict[str, Any], namespace: str | None = None,
             strict: bool = True) -> dict[str, Any]:
        """Lint the chart with these values (``helm lint --strict``).

        :param chart_path: chart directory.
        :param values: the values to lint with.
        :param namespace: namespace to lint for.
        :param strict: treat warnings as errors.
        :return: Helm's report (``messages``, ``errors``).
        :raises HelmChartError: with every error finding, when there is one.
        """
        report = _sdk().lint(str(chart_path), values, strict=strict, namespace=namespace,
                             kube_version=self.kube_version)
        problems = [f"{m.get('path')}: {m.get('error')}" for m in report.get("messages", [])
                    if m.get("severity", 0) >= LINT_ERROR]
        if problems or report.get("errors"):
            details = problems or list(report["errors"])
            raise HelmChartError(f"chart {Path(chart_path).name} fails lint: " + "; ".join(details))
        return report

    def dry_run_install(self, chart_path: str | Path, values: dict[str, Any], release: str,
                        namespace: str) -> list[dict[str, Any]]:
        """Run the install client-side (``helm install --dry-run=client``): no cluster contacted.

        :return: the Kubernetes objects the install would create.
        :raises HelmChartError: when Helm refuses the install.
        """
        sdk = _sdk()
        try:
            sdk.validate_release_name(release)
            # Memory storage: a dry run must not look for (or write) release records anywhere.
            with sdk.Config(namespace=namespace, storage_driver="memory") as cfg:
                result = cfg.install(str(chart_path), release, values, namespace=namespace, dry_run="client")
        except sdk.HelmError as exc:
            raise HelmChartError(f"dry-run install of {release} in {namespace} failed: {_reason(exc)}") from exc
        return parse_manifests(result.get("manifest") or "")

    # -- cluster
    def install(self, chart_path: str | Path, values: dict[str, Any], release: str, namespace: str,
                *, wait: str | None = None) -> dict[str, Any]:
        """Install the chart as ``release``, idempotently.

        An existing deployed release with the same values is left alone (a retried task
        converges). A release left ``failed`` by an earlier attempt is removed and installed
        again. A release with other values, or one mid-operation, is a conflict.

        :param chart_path: chart directory or ``.tgz``.
        :param values: the release's values.
        :param release: release name (``JobNames.release``).
        :param namespace: release namespace (must exist).
        :param wait: the SDK's wait strategy (``None``: return once the objects are created).
        :return: Helm's release summary (``name``, ``namespace``, ``revision``, ``status``, ...).
        :raises HelmClusterNotConfigured: no cluster is configured.
        :raises HelmReleaseConflict: the release exists with other values or is busy.
        :raises HelmHookError: Helm failed; the message carries its reason.
        """
        sdk = _sdk()
        sdk.validate_release_name(release)
        with self._config(namespace) as cfg:
            try:
                result = self._install(cfg, chart_path, values, release, namespace, wait)
            except sdk.HelmError as exc:
                raise HelmHookError(f"helm install of {release} in {namespace} failed: {_reason(exc)}") from exc
        if result.get("status") != "deployed":
            raise HelmHookError(f"helm install of {release} in {namespace} ended {result.get('status')!r}, "
                                "not deployed")
        return {k: v for k, v in result.items() if k != "manifest"}

    def uninstall(self, release: str, namespace: str) -> bool:
        """Uninstall ``release``; a release that does not exist is fine.

        :return: whether a release was removed.
        :raises HelmClusterNotConfigured: no cluster is configured.
        :raises HelmHookError: Helm failed; the message carries its reason.
        """
        sdk = _sdk()
        with self._config(namespace) as cfg:
            try:
                return self._uninstall(cfg, release, namespace)
            except sdk.HelmError as exc:
                raise HelmHookError(f"helm uninstall of {release} in {namespace} failed: {_reason(exc)}") from exc

    def release_status(self, release: str, namespace: str) -> dict[str, Any] | None:
        """:return: the release summary without its manifest, or ``None`` when there is none."""
        sdk = _sdk()
        with self._config(namespace) as cfg:
            try:
                return self._status(cfg, release)
            except sdk.HelmError as exc:
                raise HelmHookError(f"helm status of {release} in {namespace} failed: {_reason(exc)}") from exc

    # -- helpers (they raise the SDK's errors; the public methods say which action failed)
    def _install(self, cfg: Any, chart_path: str | Path, values: dict[str, Any], release: str, namespace: str,
                 wait: str | None) -> dict[str, Any]:
        existing = self._status(cfg, release)
        if existing is not None:
            status = existing.get("status")
            if status == "deployed":
                if _normalised(cfg.get_values(release)) == _normalised(values):
                    self.log.info("Release %s in %s is already deployed with these values", release, namespace)
                    return existing
                raise HelmReleaseConflict(
                    f"release {release} in {namespace} is deployed with other values; "
                    "uninstall it first (a job's release is never upgraded in place)")
            if status != "failed":
                raise HelmReleaseConflict(f"release {release} in {namespace} is {status}: another operation "
                                          "is in progress or was interrupted")
            # A failed release holds the name but runs nothing: the retry replaces it.
            self.log.warning("Release %s in %s failed in an earlier attempt: reinstalling", release, namespace)
            self._uninstall(cfg, release, namespace)
        result = cfg.install(str(chart_path), release, values, namespace=namespace, timeout=self.timeout, wait=wait)
        self.log.info("Installed release %s (revision %s) in %s: %s", release, result.get("revision"), namespace,
                      result.get("status"))
        return result

    def _status(self, cfg: Any, release: str) -> dict[str, Any] | None:
        try:
            summary = cfg.status(release)
        except _sdk().HelmNotFoundError:
            return None
        return {k: v for k, v in summary.items() if k != "manifest"}

    def _uninstall(self, cfg: Any, release: str, namespace: str) -> bool:
        if self._status(cfg, release) is None:
            self.log.info("Release %s in %s does not exist: nothing to uninstall", release, namespace)
            return False
        cfg.uninstall(release, ignore_not_found=True, timeout=self.timeout)
        self.log.info("Uninstalled release %s in %s", release, namespace)
        return True
