#!/bin/sh
# Verify a Runsheet signed run log with no Runsheet code: sh, jq, base64, printf, awk, cut, wc and
# openssl 3.x (or 1.1.1+; Ed25519 needs `pkeyutl -rawin`). The README shows this file; a test runs it.
#
#   sh docs/verify-signed-log.sh <signed-log.json> <signing-key.pem>
#
# signing-key.pem: Runsheet's /signing-key.pem (curl -fsS https://<runsheet>/signing-key.pem -o signing-key.pem),
# obtained from Runsheet itself, never from the log. It may hold several keys (earlier ones stay published
# after a rotation): the one whose keyid the signature names is used.
# Exit 0: signed by that key and the events link up; 1: not; 2: bad usage.
set -eu
[ "$#" -eq 2 ] || { echo "usage: sh $0 <signed-log.json> <signing-key.pem>" >&2; exit 2; }
log=$1
keys=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The envelope's fields: payloadType, and the payload (the in-toto Statement) decoded from base64.
jq -j '.payloadType' "$log" > "$work/type"
jq -j '.payload' "$log" | base64 -d > "$work/payload.json"

# 2. The DSSE pre-authentication encoding that was signed:
#    "DSSEv1" SP len(type) SP type SP len(payload) SP payload, lengths in bytes, in decimal.
printf 'DSSEv1 %d %s %d ' "$(($(wc -c < "$work/type")))" "$(cat "$work/type")" "$(($(wc -c < "$work/payload.json")))" > "$work/pae.bin"
cat "$work/payload.json" >> "$work/pae.bin"

# 3. Each PUBLIC KEY block of the key file on its own; a key's keyid is the sha256 of its DER encoding.
awk -v dir="$work" '
  /-----BEGIN PUBLIC KEY-----/ { n++; file = dir "/key" n ".pem" }
  file != "" { print > file }
  /-----END PUBLIC KEY-----/ { close(file); file = "" }' "$keys"

# 4. A signature made by one of those keys must verify over the PAE (Ed25519 signs the message itself: -rawin).
verified=""
count=$(jq '.signatures | length' "$log")
i=0
while [ "$i" -lt "$count" ] && [ -z "$verified" ]; do
  keyid=$(jq -r ".signatures[$i].keyid" "$log")
  jq -j ".signatures[$i].sig" "$log" | base64 -d > "$work/sig.bin"
  for key in "$work"/key*.pem; do
    [ -f "$key" ] || continue
    id=$(openssl pkey -pubin -in "$key" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
    [ "$id" = "$keyid" ] || continue
    if openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in "$work/pae.bin" -sigfile "$work/sig.bin"; then
      verified=$keyid
    else
      echo "FAILED: the signature by key $keyid does not verify: the log was changed after signing." >&2
      exit 1
    fi
  done
  i=$((i + 1))
done
if [ -z "$verified" ]; then
  echo "FAILED: no signature in $log was made by a key in $keys." >&2
  exit 1
fi

# 5. The signed events link up: seq 1, 2, 3…, event 1 follows the genesis sha256("runsheet/run-log/v1\n" + run id),
#    each prev_hash is the previous hash, and the subject digest is the last hash (the chain head).
#    Recomputing each event's own hash needs RFC 8785 canonical JSON: `npx runsheet log verify` does that.
run_id=$(jq -r '.predicate.run.id' "$work/payload.json")
genesis=$(printf 'runsheet/run-log/v1\n%s' "$run_id" | openssl dgst -sha256 -r | cut -d' ' -f1)
if ! jq -e --arg genesis "$genesis" '
  .predicate.events as $e
  | ($e | length) as $n
  | .subject[0].name == "run/" + .predicate.run.id
  and ([range(0; $n)] | all(. as $i | $e[$i].seq == $i + 1 and $e[$i].prev_hash == (if $i == 0 then $genesis else $e[$i - 1].hash end)))
  and .subject[0].digest.sha256 == (if $n == 0 then $genesis else $e[$n - 1].hash end)' "$work/payload.json" > /dev/null; then
  echo "FAILED: the signed events do not link up to the signed head." >&2
  exit 1
fi

jq -r --arg key "$verified" '"OK: run \(.predicate.run.id) (\(.predicate.run.kind), \(.predicate.run.state)), head \(.subject[0].digest.sha256), \(.predicate.events | length) events, signed by key \($key)"' "$work/payload.json"
