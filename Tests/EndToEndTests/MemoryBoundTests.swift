import Foundation
import RelayTestSupport
import Testing

/// A session streams its message to the spool; the relay's memory does not
/// grow with the size of the messages in flight.
///
/// Twenty sessions send at once. Against an optimised relay binary
/// (`swift test -c release`, or `M365_RELAY_BINARY` pointing at one) each
/// sends 8 MiB: holding them would take 160 MiB, and the peak RSS may grow
/// by less than 100 MiB. A debug binary is slower, so to stay well inside the
/// 60 s budget it gets 4 MiB each (80 MiB in flight) and may grow by less
/// than 40 MiB.
@Suite("Bounded memory")
struct MemoryBoundTests {
    static let messageCount = 20

    struct Load {
        var bodySize: Int
        var allowedGrowthKB: Int
    }

    static func load(for binary: String) -> Load {
        let path = URL(fileURLWithPath: binary).resolvingSymlinksInPath().pathComponents
        return path.contains("release")
            ? Load(bodySize: 8 * 1024 * 1024, allowedGrowthKB: 100 * 1024)
            : Load(bodySize: 4 * 1024 * 1024, allowedGrowthKB: 40 * 1024)
    }

    /// Sends `count` messages of `size` body bytes at once, one thread and
    /// connection each; prints one JSON object with every DATA reply.
    static let concurrentSendScript = """
    import json, smtplib, sys, threading, time
    port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    line = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" * 2)[:76] + b"\\r\\n"
    body = line * (size // len(line) + 1)
    results = [None] * count
    def send(i):
        sender, recipient = "sender%d@contoso.com" % i, "rcpt%d@contoso.com" % i
        headers = ("From: %s\\r\\nTo: %s\\r\\nSubject: memory %d\\r\\nMessage-ID: <memory-%d@relay.test>\\r\\n\\r\\n" % (sender, recipient, i, i)).encode()
        s = None
        try:
            s = smtplib.SMTP("127.0.0.1", port, timeout=60)
            s.ehlo("client.test")
            code, reply = s.mail(sender)
            if code != 250:
                results[i] = [code, reply.decode(errors="replace")]
                return
            code, reply = s.rcpt(recipient)
            if code not in (250, 251):
                results[i] = [code, reply.decode(errors="replace")]
                return
            code, reply = s.data(headers + body)
            results[i] = [code, reply.decode(errors="replace")]
        except Exception as e:
            results[i] = [0, repr(e)]
        finally:
            try:
                if s is not None:
                    s.quit()
            except Exception:
                pass
    started = time.time()
    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"results": results, "seconds": time.time() - started, "body_bytes": len(body)}))
    """

    /// A field of /proc/PID/status in kB (`VmHWM`: peak resident set size).
    static func status(_ field: String, pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/status"), "needs /proc"))
    func twentyConcurrentLargeMessagesStayOnDisk() async throws {
        let binary = try RelayCommandProcess.binary()
        let load = Self.load(for: binary)
        let directory = TemporaryDirectory("memory")
        let relayPort = freeLoopbackPort()
        // Nothing listens there: every delivery defers and the messages stay in the spool.
        let closedPort = freeLoopbackPort()
        let tokenFile = try directory.write("token", "memory-test-token\n")
        let configuration = try directory.write("relay.yaml", """
            server:
              hostname: relay.test
              listeners:
                - address: "127.0.0.1:\(relayPort)"
                  tls: none
              limits:
                max_message_size: 40MB
            storage:
              url: "sqlite:\(directory.file("data/relay.sqlite"))"
            clients:
              - name: local
                networks: ["127.0.0.1/32"]
                auth: none
                allowed_senders: ["*"]
                allowed_recipients: ["*"]
                route: tenant
            routes:
              - name: tenant
                mode: smtp
                smtp_endpoint: "127.0.0.1:\(closedPort)"
                tls: none
                token_file: \(tokenFile)
            """)
        let relay = try RelayCommandProcess(["serve", "--config", configuration])
        #expect(await eventually(timeout: 60) { relay.stderr.contains("m365-relay started") || !relay.isRunning },
                "the relay did not start: \(relay.stderr)")
        try #require(relay.isRunning, "the relay exited: \(relay.stderr)")

        // Twenty small messages first, so that what a connection and a commit cost
        // once (threads, buffers, database pages) is in the baseline.
        let warmUp = try await ExternalProcess.python(Self.concurrentSendScript, ["\(relayPort)", "\(Self.messageCount)", "1000"], timeout: 90)
        #expect(warmUp.stdout.components(separatedBy: "[250,").count - 1 == Self.messageCount, "warm-up: \(warmUp.stdout) \(warmUp.stderr)")

        let before = try #require(Self.status("VmHWM", pid: relay.pid))
        let result = try await ExternalProcess.python(
            Self.concurrentSendScript, ["\(relayPort)", "\(Self.messageCount)", "\(load.bodySize)"], timeout: 90)
        let peak = try #require(Self.status("VmHWM", pid: relay.pid), "the relay died: \(relay.stderr)")
        let resident = Self.status("VmRSS", pid: relay.pid) ?? -1

        let line = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let report = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        let replies = (report?["results"] as? [Any]) ?? []
        let codes = replies.map { (($0 as? [Any])?.first as? Int) ?? -1 }
        let seconds = (report?["seconds"] as? Double) ?? -1
        print("""
            MemoryBoundTests: \(binary): \(Self.messageCount) concurrent messages of \(load.bodySize) body bytes in \
            \(String(format: "%.1f", seconds)) s; relay VmHWM before \(before) kB, after \(peak) kB, \
            growth \(peak - before) kB (limit \(load.allowedGrowthKB) kB); VmRSS after \(resident) kB
            """)
        #expect(codes.count == Self.messageCount, "python: \(result.stdout) \(result.stderr)")
        #expect(codes.allSatisfy { $0 == 250 }, "every message must be accepted: \(replies)")
        #expect(peak - before < load.allowedGrowthKB,
                "peak RSS grew by \(peak - before) kB for \(Self.messageCount) messages in flight: they are being held in memory")

        // Each large message is a file in the spool next to the queue database; the small
        // warm-up messages are kept in the database itself (64 KiB and less).
        let spool = directory.file("data/spool")
        let sizes = ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).compactMap { name -> Int? in
            let attributes = try? FileManager.default.attributesOfItem(atPath: spool + "/" + name)
            guard attributes?[.type] as? FileAttributeType == .typeRegular else { return nil }
            return (attributes?[.size] as? NSNumber)?.intValue
        }
        let large = sizes.filter { $0 >= load.bodySize }
        print("MemoryBoundTests: spool holds \(sizes.count) files, \(large.count) of at least \(load.bodySize) bytes: \(large.sorted())")
        #expect(sizes.count == Self.messageCount, "spool: \(sizes.sorted())")
        #expect(large.count == Self.messageCount, "spool: \(sizes.sorted())")

        #expect(await relay.terminate(timeout: 60) == 0, "SIGTERM must end the relay cleanly: \(relay.stderr.suffix(2000))")
    }
}
