#!/usr/bin/env bash
# Create or update everything in ops/ in one project: the log-based metrics, the dashboard and
# the alert policies. Safe to run again: existing objects are updated, not duplicated.
#
#   PROJECT_ID=my-project ops/apply.sh
#   PROJECT_ID=my-project SERVICE=my-collector \
#     NOTIFICATION_CHANNELS=projects/my-project/notificationChannels/123 ops/apply.sh
#
# SERVICE (default rt-mp-collector) replaces the Cloud Run service name written in the files.
# NOTIFICATION_CHANNELS (comma-separated channel resource names) is attached to every policy; an
# update without it leaves the policies with no channel, so pass it on every run.
set -euo pipefail
cd "$(dirname "$0")"

: "${PROJECT_ID:?set PROJECT_ID to the Google Cloud project id}"
SERVICE="${SERVICE:-rt-mp-collector}"
NOTIFICATION_CHANNELS="${NOTIFICATION_CHANNELS:-}"
DASHBOARD_ID="${DASHBOARD_ID:-$SERVICE}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A copy of one file with the service name substituted.
render() {
  local out="$work/$(basename "$1")"
  sed "s/rt-mp-collector/${SERVICE}/g" "$1" >"$out"
  printf '%s\n' "$out"
}

# Log-based metrics first: the policies and the dashboard refer to them.
for file in metrics/*.yaml; do
  name="$(basename "$file" .yaml)"
  config="$(render "$file")"
  if gcloud logging metrics describe "$name" --project="$PROJECT_ID" >/dev/null 2>&1; then
    gcloud logging metrics update "$name" --project="$PROJECT_ID" --config-from-file="$config"
  else
    gcloud logging metrics create "$name" --project="$PROJECT_ID" --config-from-file="$config"
  fi
done

# The dashboard keeps a fixed id, so its URL survives updates; an update must carry the etag.
config="$(render dashboard.json)"
etag="$(gcloud monitoring dashboards describe "projects/$PROJECT_ID/dashboards/$DASHBOARD_ID" \
  --format='value(etag)' 2>/dev/null || true)"
python3 - "$config" "projects/$PROJECT_ID/dashboards/$DASHBOARD_ID" "$etag" <<'PY'
import json, sys
path, name, etag = sys.argv[1:]
data = json.load(open(path))
data["name"] = name
if etag:
    data["etag"] = etag
json.dump(data, open(path, "w"))
PY
if [ -n "$etag" ]; then
  gcloud monitoring dashboards update "projects/$PROJECT_ID/dashboards/$DASHBOARD_ID" \
    --project="$PROJECT_ID" --config-from-file="$config"
else
  gcloud monitoring dashboards create --project="$PROJECT_ID" --config-from-file="$config"
fi

# Alert policies are found again by their display name.
for file in policies/*.json; do
  config="$(render "$file")"
  display="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["displayName"])' "$config")"
  existing="$(gcloud alpha monitoring policies list --project="$PROJECT_ID" \
    --filter="displayName=\"$display\"" --format='value(name)' | head -n 1)"
  channels=()
  if [ -n "$NOTIFICATION_CHANNELS" ]; then
    if [ -n "$existing" ]; then
      channels=(--set-notification-channels="$NOTIFICATION_CHANNELS")
    else
      channels=(--notification-channels="$NOTIFICATION_CHANNELS")
    fi
  fi
  if [ -n "$existing" ]; then
    gcloud alpha monitoring policies update "$existing" --project="$PROJECT_ID" \
      --policy-from-file="$config" ${channels[@]+"${channels[@]}"}
  else
    gcloud alpha monitoring policies create --project="$PROJECT_ID" \
      --policy-from-file="$config" ${channels[@]+"${channels[@]}"}
  fi
done
