"""The defences, each a policy consulted before a tool call runs.

- `AllowlistSandbox` (ATLAS AML.M0028): per-profile tool allow-lists, URL prefixes and write
  folders, and a path sandbox that resolves the path and keeps it inside the workspace.
- `HumanApproval` (AML.M0029): side-effecting calls wait for a reviewer; the reviewer here is a
  careful one who approves an action only when the user's task names its exact target.
- `UntrustedDataRefusal` (AML.M0030): a call that anything read from tool output chose
  (`origin="data"`) may only read; writes, deletes, shell and any network request are refused.
- `RunawayDetector`: halts the loop when one call repeats or the step budget is spent; with the
  audit log (written by the agent loop for every attempted call) it forms the detective control.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from planner import Step
from tools import READ_ONLY_TOOLS

SIDE_EFFECTS = frozenset({"write_file", "delete_file", "shell", "http_post"})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = "allowed"
    halt: bool = False


ALLOW = Decision(True)


@dataclass
class CallContext:
    task: str
    profile: str
    workspace: Path
    attempted: list[Step]  # every call attempted before this one, in order


class Policy(Protocol):
    name: str

    def check(self, step: Step, ctx: CallContext) -> Decision: ...


@dataclass(frozen=True)
class Profile:
    tools: frozenset[str]
    url_prefixes: tuple[str, ...] = ()
    write_folders: tuple[str, ...] = ()


PROFILES: dict[str, Profile] = {
    "reader": Profile(frozenset({"read_file", "list_dir"})),
    "web-reader": Profile(frozenset({"http_get"}), url_prefixes=("/docs/",)),
    "housekeeper": Profile(frozenset({"read_file", "list_dir", "delete_file"}), write_folders=("tmp/", "notes/")),
    "archivist": Profile(frozenset({"read_file", "write_file"}), write_folders=("archive/",)),
    "operator": Profile(frozenset({"read_file", "write_file"}), write_folders=("ops/",)),
    "ci-watcher": Profile(frozenset({"http_get"}), url_prefixes=("/status/",)),
}


class AllowlistSandbox:
    name = "allowlist_sandbox"

    def check(self, step: Step, ctx: CallContext) -> Decision:
        profile = PROFILES[ctx.profile]
        if step.tool not in profile.tools:
            return Decision(False, f"tool {step.tool} not allowed for profile {ctx.profile}")
        if "url" in step.args:
            path = urlsplit(step.args["url"]).path
            if urlsplit(step.args["url"]).hostname != "127.0.0.1" or not path.startswith(profile.url_prefixes):
                return Decision(False, f"url outside the allow-list: {path}")
        if "path" in step.args:
            root = ctx.workspace.resolve()
            target = (root / step.args["path"]).resolve()
            if not target.is_relative_to(root):
                return Decision(False, f"path escapes the sandbox: {step.args['path']}")
            relative = target.relative_to(root).as_posix()
            if step.tool in SIDE_EFFECTS and not relative.startswith(profile.write_folders):
                return Decision(False, f"{step.tool} outside the profile's folders: {relative}")
        return ALLOW


@dataclass
class HumanApproval:
    name: str = "human_approval"
    requested: int = 0
    rejected: int = 0

    def check(self, step: Step, ctx: CallContext) -> Decision:
        if step.tool not in SIDE_EFFECTS:
            return ALLOW
        self.requested += 1
        target = step.args.get("path") or step.args.get("url") or step.args.get("command", "")
        if target and target in ctx.task:
            return Decision(True, "approved by reviewer")
        self.rejected += 1
        return Decision(False, f"reviewer rejected {step.tool} on {target!s:.60}: not part of the task")


class UntrustedDataRefusal:
    name = "untrusted_refusal"

    def check(self, step: Step, ctx: CallContext) -> Decision:
        if step.origin != "data":
            return ALLOW
        if step.tool in READ_ONLY_TOOLS and step.tool != "http_get":
            return ALLOW
        return Decision(False, f"{step.tool} chosen by untrusted {step.source} refused")


@dataclass
class RunawayDetector:
    repeat_limit: int = 4  # the same call this many times is a loop, not a retry
    step_budget: int = 20
    name: str = "runaway_detector"
    halted: bool = field(default=False)

    def check(self, step: Step, ctx: CallContext) -> Decision:
        repeats = sum(1 for s in ctx.attempted if s.key() == step.key()) + 1
        if repeats >= self.repeat_limit:
            self.halted = True
            return Decision(False, f"runaway: {step.tool} repeated {repeats} times", halt=True)
        if len(ctx.attempted) + 1 > self.step_budget:
            self.halted = True
            return Decision(False, f"runaway: step budget {self.step_budget} spent", halt=True)
        return ALLOW
