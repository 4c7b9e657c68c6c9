"""The commented example plan `limitless init` writes (it must validate)."""

from __future__ import annotations

EXAMPLE_PLAN = """\
# limitless plan: each task runs in its own git worktree and tmux pane.
#   limitless validate   check this file
#   limitless graph      draw the tasks and their dependencies
#   limitless run        start the agents (watch, detach with C-b d, re-attach later)

name: shop                        # runs are called shop-1, shop-2, ...
# base: main                      # branch to start from and land on (default: the current one)
max_concurrency: 3                # agents running at once (1..64)
agent: claude                     # default agent profile for the tasks; built-in ones are
                                  #   claude, codex, gemini, aider, opencode, shell and demo
# worktree_root: ../shop.worktrees   # default: <repo>/../<repo-name>.worktrees
# sandbox: worktree              # run agents under bubblewrap: they write their worktree only
# sandbox_write: ["~/.npm/"]      # ...and these (agent programs' own state is allowed already)

setup:                            # run in every new worktree before its agent starts
  - npm ci
copy: [".env"]                    # gitignored files copied from your checkout into each worktree

merge:
  strategy: merge                 # merge | squash | rebase
  gate: npm test                  # run after each merge; a merge that fails it is undone
  on_conflict: stop               # stop | skip | agent (an agent resolves the conflict)
  # resolver_timeout: 30m         # with agent: a resolver still going then is stopped
  land: auto                      # auto (fast-forward the base branch) | manual

budget:
  max_cost_usd: 20                # spending limit for the run, from what agents report
  alert_at: 0.8                   # warn at 80% of it

# agents:                         # your own agent profiles, or changes to built-in ones
#   claude:
#     command: ["claude", "-p", "{prompt}", "--permission-mode", "acceptEdits"]
#   reviewer:
#     command: ["codex", "exec", "{prompt}"]

# stages:                         # run every task as a chain of steps in one worktree
#   - {name: build, prompt: "{prompt}"}
#   - {name: review, agent: codex, prompt: "Review the work on {task} and fix what is wrong"}

# hooks:
#   on_run_done: notify-send "limitless run finished"

tasks:
  - id: orders-api
    prompt: |
      Add GET /api/orders/:id to server/routes/orders.ts. It returns one order with
      its line items, or 404. Cover both cases in server/routes/orders.test.ts.
    files: ["server/routes/orders*"]    # declared scope: overlaps are reported
    estimate: 20m                       # used to find the critical path

  - id: order-page
    prompt: |
      Add an order detail page at web/src/pages/OrderPage.tsx that loads
      /api/orders/:id and shows the items and the total. Link to it from the order list.
    depends_on: orders-api              # waits for orders-api; its branch is merged in first
    files: ["web/src/pages/**"]
    estimate: 30m

  - id: currency-format
    prompt: |
      Replace the ad-hoc price formatting in web/src with one formatPrice() helper
      in web/src/lib/money.ts that uses Intl.NumberFormat. Add unit tests.
    priority: 5                         # higher starts first when slots are scarce
    retries: 1                          # try once more if the agent fails
    timeout: 45m

  - id: order-e2e
    prompt: |
      Write a Playwright test in e2e/orders.spec.ts that opens an order page and
      checks the items and the formatted total.
    depends_on: [order-page, currency-format]
    # prompt_file: prompts/order-e2e.md   # instead of prompt: a file next to this plan
"""
