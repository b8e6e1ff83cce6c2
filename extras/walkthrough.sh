#!/usr/bin/env bash
# A curl tour of every route of a running imagestore, printing each command first
# so it can be copied. Start the service (npm start) and, to watch the events,
# extras/subscribe.sh in another terminal. Expects no albums named holidays/summer.
#   IMAGESTORE_URL=http://127.0.0.1:3333 bash extras/walkthrough.sh
set -euo pipefail

URL=${IMAGESTORE_URL:-http://127.0.0.1:3333}
API=$URL/api/v1
SAMPLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/sample.png
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# run CMD...: print CMD (quoting only the words that need it), then run it.
run() {
  local out='$' a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then out+=" $a"; else out+=" '${a//\'/\'\\\'\'}'"; fi
  done
  printf '\n%s\n' "$out"
  "$@"
}

# --fail-with-body: stop on any 4xx/5xx (set -e) but still show the JSON error.
# -w: show the status, since 201/204 tell as much as the body.
CURL=(curl --fail-with-body -sS -w '\nHTTP %{http_code}\n')
JSON=(-H 'Content-Type: application/json')

run "${CURL[@]}" "$API/albums"
run "${CURL[@]}" -X POST "${JSON[@]}" -d '{"albumName":"holidays"}' "$API/albums"
run "${CURL[@]}" -F "file=@$SAMPLE;type=image/png" "$API/albums/holidays/images"
run "${CURL[@]}" "$API/albums/holidays/images"
run "${CURL[@]}" "$API/albums/holidays/images?limit=10&details=true"

# Without transform parameters the stored bytes come back unchanged.
run "${CURL[@]}" -o "$TMP/sample.png" "$API/albums/holidays/images/sample.png"
run cmp "$SAMPLE" "$TMP/sample.png"
echo "downloaded copy is identical"

run "${CURL[@]}" -X PATCH "${JSON[@]}" -d '{"imageName":"beach.png"}' "$API/albums/holidays/images/sample.png"
run "${CURL[@]}" -X PATCH "${JSON[@]}" -d '{"albumName":"summer"}' "$API/albums/holidays"
run "${CURL[@]}" -X DELETE "$API/albums/summer/images/beach.png"
run "${CURL[@]}" -X DELETE "$API/albums/summer"

run "${CURL[@]}" "$URL/livez"
run "${CURL[@]}" "$URL/readyz"
# The document is long: save it and list its paths instead of printing it whole.
run "${CURL[@]}" -o "$TMP/openapi.json" "$URL/openapi.json"
run node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(d.openapi, d.info?.title, Object.keys(d.paths ?? {}))' "$TMP/openapi.json"

echo
echo "walk-through finished"
