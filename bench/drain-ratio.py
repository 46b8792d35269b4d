#!/usr/bin/env python3
"""Drain ratio: how close m365-relay gets to the fastest delivery Microsoft's
quotas allow, without being throttled.

A burst of N messages (default 1,000) from S sending mailboxes (default 4) goes
into the relay at once. The relay delivers through an `smtp` route with an
app-only OAuth token to the sandbox, which enforces the per-mailbox quota
strictly (refuses past it, counting a throttle rejection). The ratio is the
time from the start of the burst to the last message the sandbox accepted,
divided by the ideal time: with a sliding window of Q messages a minute, a
mailbox sending n messages at once needs floor((n - 1) / Q) minutes.

    bench/drain-ratio.py --binary .build-release/release/m365-relay [-n 1000] [--mailboxes 4] [--per-minute 30]

Loopback only; takes about (n / mailboxes / per_minute) minutes.
"""
import argparse, json, os, shutil, signal, smtplib, socket, ssl, subprocess, sys, tempfile, threading, time, urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def stats(base, context):
    with urllib.request.urlopen(base + "/sandbox/stats", context=context, timeout=10) as reply:
        return json.load(reply)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/debug/m365-relay")
    parser.add_argument("-n", "--messages", type=int, default=1000)
    parser.add_argument("--mailboxes", type=int, default=4)
    parser.add_argument("--per-minute", type=int, default=30, help="the sandbox's quota per mailbox (Microsoft's default 30)")
    parser.add_argument("--margin", default=None, help="the route's quota_margin (default: the relay's 5%%)")
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, queue, sandbox messages)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="m365-drain-")
    smtp_port, http_port, relay_port = free_port(), free_port(), free_port()
    secret = "drain-secret"
    client_id = "11111111-2222-3333-4444-555555555555"
    processes = []
    try:
        sandbox = subprocess.Popen([
            args.binary, "sandbox", "--smtp", f"127.0.0.1:{smtp_port}", "--http", f"127.0.0.1:{http_port}",
            "--data-directory", f"{work}/sandbox", "--app", f"{client_id}:{secret}",
            "--messages-per-minute", str(args.per_minute), "--strict-quotas", "--log-level", "info",
        ], stdout=subprocess.DEVNULL, stderr=open(f"{work}/sandbox.log", "w"))
        processes.append(sandbox)
        wait_port(smtp_port)
        wait_port(http_port)
        with open(f"{work}/secret", "w") as f:
            f.write(secret + "\n")
        os.chmod(f"{work}/secret", 0o600)
        margin = f"\n    quota_margin: \"{args.margin}\"" if args.margin else ""
        with open(f"{work}/relay.yaml", "w") as f:
            f.write(f"""server:
  hostname: relay.drain.local
  listeners:
    - address: "127.0.0.1:{relay_port}"
      tls: none
storage:
  url: "sqlite:{work}/relay/relay.sqlite"
clients:
  - name: burst
    networks: ["127.0.0.0/8"]
    auth: none
    route: tenant
routes:
  - name: tenant
    mode: smtp
    smtp_endpoint: "127.0.0.1:{smtp_port}"
    ca_file: {work}/sandbox/ca.pem
    login_url: https://127.0.0.1:{http_port}
    tenant_id: sandbox.onmicrosoft.com
    client_id: {client_id}
    client_secret_file: {work}/secret
    quotas: {{ messages_per_minute: {args.per_minute} }}{margin}
delivery:
  retry: [10s]
""")
        relay = subprocess.Popen([args.binary, "serve", "--config", f"{work}/relay.yaml", "--log-level", "warning"],
                                 stdout=subprocess.DEVNULL, stderr=open(f"{work}/relay.log", "w"))
        processes.append(relay)
        wait_port(relay_port)

        senders = [f"sender{i}@contoso.com" for i in range(args.mailboxes)]
        per_sender = [args.messages // args.mailboxes + (1 if i < args.messages % args.mailboxes else 0) for i in range(args.mailboxes)]
        errors = []

        def send(sender, count):
            try:
                client = smtplib.SMTP("127.0.0.1", relay_port, timeout=120)
                for number in range(count):
                    body = f"From: {sender}\r\nTo: alice@contoso.com\r\nSubject: drain {number}\r\n\r\nmessage {number}\r\n"
                    client.sendmail(sender, ["alice@contoso.com"], body)
                client.quit()
            except Exception as error:  # reported below
                errors.append(repr(error))

        started = time.time()
        threads = [threading.Thread(target=send, args=(s, c)) for s, c in zip(senders, per_sender)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        queued = time.time()
        if errors:
            raise SystemExit(f"sending failed: {errors[:3]}")

        context = ssl.create_default_context(cafile=f"{work}/sandbox/ca.pem")
        base = f"https://127.0.0.1:{http_port}"
        ideal = max((count - 1) // args.per_minute * 60 for count in per_sender)
        deadline = started + (args.timeout or ideal * 2 + 120)
        current = stats(base, context)
        while current["messagesStored"] < args.messages and time.time() < deadline:
            time.sleep(1)
            current = stats(base, context)
        drain = (current.get("lastAcceptedAt") or time.time()) - started
        ratio = drain / ideal if ideal > 0 else float("nan")
        print(f"messages={args.messages} mailboxes={args.mailboxes} per_minute={args.per_minute} "
              f"delivered={current['messagesStored']} throttle_rejections={current['throttleRejections']} "
              f"queued_s={queued - started:.1f} drain_s={drain:.1f} ideal_s={ideal} ratio={ratio:.3f}")
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
