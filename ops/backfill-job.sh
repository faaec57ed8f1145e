#!/usr/bin/env bash
# Print the backfill Cloud Run Job (ops/backfill-job.yaml) with this deployment's values: the
# variables of docs/deploy.md (step 2), and TAG, the image `gcloud builds submit` pushed.
#
#   ops/backfill-job.sh > backfill-job.yaml
#
# Refuses (exit 2), naming them, while any of those variables is unset, empty or holds more
# than a name, an address or a URL can: a job file with a hole in it is never written.
set -euo pipefail
template="$(dirname "$0")/backfill-job.yaml"

python3 - "$template" <<'PY'
import os
import re
import sys

PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")
SAFE = re.compile(r"[A-Za-z0-9@._:/-]+")  # what every value here is made of; nothing YAML reads

text = open(sys.argv[1], encoding="utf-8").read()
names = sorted(set(PLACEHOLDER.findall(text)))
missing = [name for name in names if not os.environ.get(name, "").strip()]
unsafe = [name for name in names if name not in missing and not SAFE.fullmatch(os.environ[name])]
if missing or unsafe:
    problems = []
    if missing:
        problems.append("set " + ", ".join(missing))
    if unsafe:
        problems.append(", ".join(unsafe) + " may hold only letters, digits and @._:/-")
    print(
        f"error: {'; '.join(problems)} (docs/deploy.md, step 2; TAG where the image is "
        "built): the job runs the service's image, account and stores",
        file=sys.stderr,
    )
    sys.exit(2)
sys.stdout.write(PLACEHOLDER.sub(lambda m: os.environ[m.group(1)], text))
PY
