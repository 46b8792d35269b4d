import Foundation
import RelayDoctor
import Testing

@Suite("Doctor report")
struct RelayDoctorReportTests {
    static let rows = [
        RelayDoctorRow(step: "DNS", action: "MX of contoso.com points at Microsoft 365", verification: "MX 0 contoso-com.mail.protection.outlook.com", result: .pass),
        RelayDoctorRow(step: "Local", action: "TLS private key /etc/m365-relay/relay.key is readable and private",
                       verification: "mode 644: readable by its world", result: .fail, hint: "chmod 600 /etc/m365-relay/relay.key"),
        RelayDoctorRow(step: "Test message", action: "Test message", verification: "not requested", result: .info),
    ]

    @Test func jsonIsAnArrayOfRowObjectsWithTheDocumentedKeys() throws {
        let data = Data(RelayDoctorReport.json(Self.rows).utf8)
        let objects = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: String]])
        #expect(objects.count == 3)
        #expect(objects.allSatisfy { Set($0.keys) == ["step", "action", "verification", "result", "hint"] })
        #expect(objects[1]["result"] == "fail")
        #expect(objects[1]["hint"] == "chmod 600 /etc/m365-relay/relay.key")
        #expect(try JSONDecoder().decode([RelayDoctorRow].self, from: data) == Self.rows)
    }

    @Test func theTableWrapsLongCellsWithinTheWidthAndEndsWithASummary() {
        let table = RelayDoctorReport.table(Self.rows, width: 80)
        let lines = table.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0].hasPrefix("Step"))
        for header in ["Action", "Verification", "Result", "Hint"] { #expect(lines[0].contains(header)) }
        #expect(lines.allSatisfy { $0.count <= 80 }, "\(table)")
        #expect(table.contains("FAIL"))
        #expect(!table.contains("\u{1B}["), "no colour unless asked")
        // Wrapped at spaces, and a word longer than its column after a separator.
        for word in ["/etc/m365-relay/", "relay.key", "readable", "private", "contoso-com.mail.", "protection.outlook."] {
            #expect(table.contains(word), "\(word)")
        }
        #expect(lines.last(where: { !$0.isEmpty }) == "1 pass, 1 fail, 0 warn, 1 info, 0 skip: 1 step failed, see the hints")
    }

    @Test func colourMarksOnlyTheResult() {
        let table = RelayDoctorReport.table(Self.rows, width: 120, colour: true)
        #expect(table.contains("\u{1B}[1;31mFAIL"))
        #expect(table.contains("\u{1B}[32mPASS"))
    }

    @Test(arguments: [
        ([RelayDoctorRow.Result.pass, .info, .skip, .warn], Int32(0)),
        ([RelayDoctorRow.Result.pass, .fail], Int32(1)),
        ([RelayDoctorRow.Result](), Int32(0)),
    ] as [([RelayDoctorRow.Result], Int32)])
    func exitStatusIsOneExactlyWhenARowFailed(results: [RelayDoctorRow.Result], status: Int32) {
        let rows = results.map { RelayDoctorRow(step: "S", action: "a", verification: "v", result: $0) }
        #expect(RelayDoctor.exitStatus(of: rows) == status)
    }
}
