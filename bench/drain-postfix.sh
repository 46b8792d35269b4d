#!/usr/bin/env bash
# drain-postfix.sh - the drain-ratio burst through Postfix with its defaults,
# for comparison with bench/drain-ratio.py.
#
# Postfix 3.7 (../shared/bench/postfix-instance.sh, a throw-away instance)
# relays to the sandbox's submission endpoint with STARTTLS and basic AUTH
# LOGIN, one credential per sender (smtp_sender_dependent_authentication),
# everything else at Postfix's defaults. The sandbox enforces the same strict
# per-mailbox quota as in drain-ratio.py and counts its refusals. Postfix has
# no XOAUTH2 of its own, hence basic authentication here.
#
#   bench/drain-postfix.sh BINARY [MESSAGES] [MAILBOXES] [PER_MINUTE] [WATCH_SECONDS]
#
# Prints the delivered count and the sandbox's refusals once a minute, for
# WATCH_SECONDS (default 900), since Postfix's retry schedule (5 minutes,
# growing) may not drain the burst in any reasonable time. Run as root.
set -euo pipefail
BINARY=${1:?usage: drain-postfix.sh BINARY [MESSAGES] [MAILBOXES] [PER_MINUTE] [WATCH_SECONDS]}
MESSAGES=${2:-1000}
MAILBOXES=${3:-4}
PER_MINUTE=${4:-30}
WATCH=${5:-900}
HERE=$(cd "$(dirname "$0")" && pwd)
INSTANCE=$HERE/../../shared/bench/postfix-instance.sh
WORK=$(mktemp -d /tmp/m365-drain-postfix.XXXXXX)
chmod 0755 "$WORK"   # the postfix user must reach its data directory
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SMTP_PORT=$(port); HTTP_PORT=$(port); LISTEN_PORT=$(port)

passwords=(); : > "$WORK/sasl_passwd"
for i in $(seq 0 $((MAILBOXES - 1))); do
    passwords+=(--mailbox-password "sender$i@contoso.com:password-$i")
    echo "sender$i@contoso.com sender$i@contoso.com:password-$i" >> "$WORK/sasl_passwd"
done
echo "[127.0.0.1]:$SMTP_PORT sender0@contoso.com:password-0" >> "$WORK/sasl_passwd"
chmod 0644 "$WORK/sasl_passwd"

"$BINARY" sandbox --smtp "127.0.0.1:$SMTP_PORT" --http "127.0.0.1:$HTTP_PORT" --data-directory "$WORK/sandbox" \
    "${passwords[@]}" --messages-per-minute "$PER_MINUTE" --strict-quotas --log-level warning 2> "$WORK/sandbox.log" &
SANDBOX=$!
export PF_DIR=$WORK/postfix PF_LISTEN_PORT=$LISTEN_PORT PF_RELAY_PORT=$SMTP_PORT
cleanup() { "$INSTANCE" stop >/dev/null 2>&1 || true; kill "$SANDBOX" 2>/dev/null || true; wait "$SANDBOX" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do [ -f "$WORK/sandbox/ca.pem" ] && break; sleep 0.1; done
export PF_EXTRA_MAIN="smtp_tls_security_level = encrypt
smtp_tls_CAfile = $WORK/sandbox/ca.pem
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = texthash:$WORK/sasl_passwd
smtp_sender_dependent_authentication = yes
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
smtp_sasl_mechanism_filter = login"
"$INSTANCE" start >/dev/null

python3 - "$LISTEN_PORT" "$MESSAGES" "$MAILBOXES" <<'PY'
import smtplib, sys, threading
port, total, boxes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def send(i, count):
    s = smtplib.SMTP("127.0.0.1", port, timeout=120)
    for n in range(count):
        sender = f"sender{i}@contoso.com"
        s.sendmail(sender, ["alice@contoso.com"], f"From: {sender}\r\nTo: alice@contoso.com\r\nSubject: drain {n}\r\n\r\nmessage {n}\r\n")
    s.quit()
threads = [threading.Thread(target=send, args=(i, total // boxes + (1 if i < total % boxes else 0))) for i in range(boxes)]
[t.start() for t in threads]; [t.join() for t in threads]
PY
START=$(date +%s)
IDEAL=$(( (MESSAGES / MAILBOXES - 1) / PER_MINUTE * 60 ))
while :; do
    NOW=$(date +%s); ELAPSED=$((NOW - START))
    STATS=$(python3 -c "import json,ssl,urllib.request; c=ssl.create_default_context(cafile='$WORK/sandbox/ca.pem'); s=json.load(urllib.request.urlopen('https://127.0.0.1:$HTTP_PORT/sandbox/stats', context=c)); print(s['messagesStored'], s['throttleRejections'])")
    set -- $STATS
    echo "postfix elapsed_s=$ELAPSED delivered=$1 throttle_rejections=$2 ideal_s=$IDEAL"
    if [ "$1" -ge "$MESSAGES" ] || [ "$ELAPSED" -ge "$WATCH" ]; then break; fi
    sleep 60
done
