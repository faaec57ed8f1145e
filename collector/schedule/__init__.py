"""Cloud Scheduler jobs as code: `python -m collector.schedule --help`.

`jobs` is the declared list (plain values), `cron` and `budget` the Export query worst case,
`plan` the pure diff of declared vs existing jobs, `sync` the Scheduler calls, `cli` the command.
"""

from collector.schedule.budget import Budget, worst_hour
from collector.schedule.jobs import JobSpec, parse_job
from collector.schedule.plan import Action, Target, desired_job, plan

__all__ = [
    "Action",
    "Budget",
    "JobSpec",
    "Target",
    "desired_job",
    "parse_job",
    "plan",
    "worst_hour",
]
