"""Plan hooks: shell commands run on run events (task done/failed, waiting, conflict, run done).

The supervisor calls `HookRunner.tick()` every loop and `close()` at the end of
the run. `tick()` does not wait (but on_run_done starts once the hooks still
running end, up to RUN_DONE_WAIT_S): it starts the hooks of new events as child
processes and looks at the ones that ended. The hook command is the plan
author's own shell line; the event reaches it only through environment
variables (`LIMITLESS_EVENT`, `LIMITLESS_RUN`, `LIMITLESS_TASK`, ...), never
pasted into the command. A failing hook is recorded as a `hook_failed` event
and shown, never fatal. The id of the last handled event is kept in
`<run dir>/hooks/handled`, so a resumed supervisor does not run a hook twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from limitless.store import Event, Store

log = logging.getLogger(__name__)

# event kind recorded by the engine -> hook name of the plan (plan.HOOK_EVENTS)
HOOK_OF_EVENT: dict[str, str] = {
    "task_done": "on_task_done",
    "task_failed": "on_task_failed",
    "task_waiting": "on_waiting",
    "merge_conflict": "on_merge_conflict",
    "run_done": "on_run_done",
}
HOOK_TIMEOUT_S = 600.0
RUN_DONE_WAIT_S = 30.0
"""How long on_run_done waits for the hooks still running (they go on after it)."""
HANDLED_FILE = "handled"


@dataclass
class _Running:
    hook: str
    event: Event
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    started: float


def hook_env(event: Event, hook: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables describing `event` to its hook."""
    data = event.data
    env = {
        "LIMITLESS_HOOK": hook,
        "LIMITLESS_EVENT": event.kind,
        "LIMITLESS_EVENT_ID": str(event.id),
        "LIMITLESS_EVENT_TIME": f"{event.ts:.3f}",
        "LIMITLESS_EVENT_JSON": json.dumps(data, ensure_ascii=False, default=str),
        "LIMITLESS_RUN": event.run_id,
        "LIMITLESS_TASK": event.task_id or "",
    }
    for key, name in (
        ("status", "LIMITLESS_STATUS"),
        ("exit_code", "LIMITLESS_EXIT_CODE"),
        ("reason", "LIMITLESS_REASON"),
    ):
        value = data.get(key)
        if value is not None:
            env[name] = str(value)
    files = data.get("files")
    if isinstance(files, list):
        env["LIMITLESS_FILES"] = "\n".join(str(f) for f in files)
    env.update(extra or {})
    return env


class HookRunner:
    """Runs the plan's hooks for the run's new events, without blocking the caller."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        hooks: Mapping[str, str],
        cwd: Path,
        *,
        out: Callable[[str], None] | None = None,
        timeout_s: float = HOOK_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.hooks = dict(hooks)
        self.cwd = cwd
        self.out = out
        self.timeout_s = timeout_s
        self.running: list[_Running] = []
        self.dir = store.run_dir(run_id) / "hooks"
        self.handled = self._read_handled() if self.hooks else 0

    # ---------------------------------------------------------------- public

    def tick(self) -> None:
        """Start the hooks of events recorded since the last tick; reap those that ended."""
        if not self.hooks:
            return
        self._reap(time.monotonic())
        events = self.store.events(self.run_id, after_id=self.handled)
        if not events:
            return
        for event in events:
            hook = HOOK_OF_EVENT.get(event.kind)
            if hook and hook in self.hooks:
                if hook == "on_run_done":  # the run's last word comes after the others' ends
                    self._wait_running(time.monotonic() + RUN_DONE_WAIT_S)
                self._start(hook, event)
        self.handled = events[-1].id
        try:
            self._write_handled()
        except OSError as exc:  # the hooks ran; a resumed supervisor may run them again
            log.warning("hook progress not saved", extra={"error": str(exc)})

    def close(self, timeout: float = 30.0) -> None:
        """Run the hooks of the last events, then wait (up to `timeout`) for running ones."""
        if not self.hooks:
            return
        self.tick()
        self._wait_running(time.monotonic() + timeout)
        for running in list(self.running):
            self._stop(running)
            self._failed(running, None, f"still running after {timeout:g}s at the end of the run")
        self.running.clear()

    # ---------------------------------------------------------------- inside

    def _start(self, hook: str, event: Event) -> None:
        command = self.hooks[hook]
        self.dir.mkdir(parents=True, exist_ok=True)
        log_path = self.dir / f"{event.id}-{hook}.log"
        env = dict(os.environ)
        env.update(hook_env(event, hook, {"LIMITLESS_REPO": str(self.cwd)}))
        try:
            log_file = open(log_path, "wb")  # noqa: SIM115 - closed when the hook is reaped
        except OSError as exc:
            self._record_failure(hook, event, None, f"cannot write its log {log_path}: {exc}", "")
            return
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            log_file.close()
            self._record_failure(hook, event, None, f"could not start: {exc}", str(log_path))
            return
        log.info("hook started", extra={"hook": hook, "event": event.id})
        self.running.append(_Running(hook, event, process, log_path, log_file, time.monotonic()))

    def _wait_running(self, deadline: float) -> None:
        """Reap until no hook runs or `deadline` (monotonic) passes."""
        while self.running and time.monotonic() < deadline:
            self._reap(time.monotonic())
            if self.running:
                time.sleep(0.05)

    def _reap(self, now: float) -> None:
        for running in list(self.running):
            code = running.process.poll()
            if code is None:
                if now - running.started > self.timeout_s:
                    self._stop(running)
                    self.running.remove(running)
                    self._failed(running, None, f"timed out after {self.timeout_s:g}s")
                continue
            self.running.remove(running)
            running.log_file.close()
            if code == 0:
                self.store.add_event(
                    self.run_id,
                    "hook_done",
                    running.event.task_id,
                    hook=running.hook,
                    event_id=running.event.id,
                )
            else:
                self._failed(running, code, f"exited with status {code}")

    def _stop(self, running: _Running) -> None:
        """Kill the hook's process group (it was started in a session of its own)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(running.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            running.process.wait(timeout=5)
        running.log_file.close()

    def _failed(self, running: _Running, code: int | None, why: str) -> None:
        self._record_failure(running.hook, running.event, code, why, str(running.log_path))

    def _record_failure(
        self, hook: str, event: Event, code: int | None, why: str, log_path: str
    ) -> None:
        tail = _tail(Path(log_path)) if log_path else ""
        reason = f"hook {hook} {why}" + (f": {tail}" if tail else "")
        self.store.add_event(
            self.run_id,
            "hook_failed",
            event.task_id,
            hook=hook,
            event_id=event.id,
            exit_code=code,
            reason=reason,
            log=log_path,
        )
        log.warning("hook failed", extra={"hook": hook, "event": event.id, "why": why})
        if self.out is not None:
            with contextlib.suppress(OSError, ValueError):
                self.out(f"⚠ {reason} (log: {log_path})")

    def _read_handled(self) -> int:
        try:
            return int((self.dir / HANDLED_FILE).read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _write_handled(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / HANDLED_FILE
        scratch = path.with_suffix(".tmp")
        scratch.write_text(f"{self.handled}\n")
        os.replace(scratch, path)


def _tail(path: Path, limit: int = 200) -> str:
    """The last line of a hook's output, shortened: the likely reason it failed."""
    try:
        text = path.read_bytes()[-4096:].decode("utf-8", "replace").strip()
    except OSError:
        return ""
    last = text.splitlines()[-1] if text else ""
    return last[:limit]
