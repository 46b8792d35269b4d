import Foundation
import HummingbirdTesting
import RelayCore
import RelayTestSupport
import Testing

@testable import RelayAdmin

@Suite("Admin API: OpenAPI document")
struct RelayOpenAPIDocumentTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let documentPath = packageRoot.appendingPathComponent("docs/openapi.json").path
    static let embeddedPath = packageRoot.appendingPathComponent("Sources/RelayAdmin/API/RelayOpenAPIDocument.swift").path

    /// What RelayOpenAPIDocument.swift must contain for `document`.
    static func embeddedSource(for document: String) -> String {
        """
        // docs/openapi.json, served at /openapi.json. Embedded as a literal because a
        // SwiftPM resource bundle does not travel with a copied binary. Do not edit:
        // edit docs/openapi.json, then run RelayOpenAPIDocumentTests, which prints how to sync this file.
        enum RelayOpenAPIDocument {
            static let json = #\"\"\"

        """ + document + "\n\"\"\"#\n}\n"
    }

    @Test("/openapi.json serves docs/openapi.json byte for byte")
    func servedEqualsRepository() async throws {
        let document = try String(contentsOfFile: Self.documentPath, encoding: .utf8)
        let fixture = try AdminFixture()
        let served = try await withAdminServer(backend: fixture.backend()) { client in
            let response = try await client.get("/openapi.json")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            return response.text
        }
        if served != document {
            // Write the Swift file that would serve it, and say how to put it in place.
            let generated = FileManager.default.temporaryDirectory.appendingPathComponent("RelayOpenAPIDocument.swift").path
            try Self.embeddedSource(for: document).write(toFile: generated, atomically: true, encoding: .utf8)
            Issue.record("""
                docs/openapi.json and the document served at /openapi.json differ. To serve docs/openapi.json, run:
                    cp \(generated) \(Self.embeddedPath)
                """)
        }
        #expect(try String(contentsOfFile: Self.embeddedPath, encoding: .utf8) == Self.embeddedSource(for: document))
    }

    @Test("it is OpenAPI 3.1 JSON describing every endpoint and method the server has")
    func describesEveryEndpoint() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(RelayOpenAPIDocument.json.utf8)) as? [String: Any])
        #expect(object["openapi"] as? String == "3.1.0")
        let paths = try #require(object["paths"] as? [String: [String: Any]])
        let expected = Dictionary(uniqueKeysWithValues: RelayAdminAPI.endpoints.map { ($0.path, Set($0.methods.map { $0.rawValue.lowercased() })) })
        #expect(Set(paths.keys) == Set(expected.keys))
        for (path, methods) in expected {
            let documented = Set(paths[path, default: [:]].keys).subtracting(["parameters", "summary", "description"])
            #expect(documented == methods, "\(path)")
        }
        // The search's parameters are exactly the ones the server reads.
        let search = try #require(paths["/api/v1/messages"]?["get"] as? [String: Any])
        let parameters = try #require(search["parameters"] as? [[String: Any]])
        #expect(parameters.compactMap { $0["name"] as? String } == RelayTraceQueryParsing.parameterNames)
        // Every $ref resolves.
        let components = try #require(object["components"] as? [String: [String: Any]])
        for reference in Self.references(in: object) {
            let parts = reference.split(separator: "/").map(String.init)
            #expect(parts.count == 4 && parts[0] == "#" && parts[1] == "components", "\(reference)")
            #expect(components[parts[2]]?[parts[3]] != nil, "unresolved \(reference)")
        }
        let statuses = try #require((components["schemas"]?["Status"] as? [String: Any])?["enum"] as? [String])
        #expect(statuses == RelayTraceStatus.allCases.map(\.rawValue))
        let kinds = try #require(
            (((components["schemas"]?["Event"] as? [String: Any])?["properties"] as? [String: Any])?["kind"] as? [String: Any])?["enum"] as? [String])
        #expect(kinds == RelayTraceEvent.Kind.allCases.map(\.rawValue))
    }

    static func references(in value: Any) -> [String] {
        if let object = value as? [String: Any] {
            return object.flatMap { key, value in key == "$ref" ? [value as? String ?? ""] : references(in: value) }
        }
        if let array = value as? [Any] { return array.flatMap(references(in:)) }
        return []
    }
}

@Suite("Admin API: parameters")
struct RelayTraceQueryParsingTests {
    @Test("ages mean now minus", arguments: [
        ("30m", 1800.0), ("1h", 3600), ("2d", 172_800), ("1w", 604_800), ("45s", 45), ("1h30m", 5400), ("2H", 7200),
    ])
    func ages(text: String, seconds: TimeInterval) throws {
        #expect(RelayTraceQueryParsing.age(text) == seconds)
        let now = Date(timeIntervalSince1970: 1_750_000_000)
        #expect(try RelayTraceQueryParsing.date(text, parameter: "since", now: now) == now.addingTimeInterval(-seconds))
    }

    @Test("not ages", arguments: ["", "h", "1", "1x", "-1h", "1.5h", "h1", "1h 30m", "9999999999d"])
    func notAges(text: String) {
        #expect(RelayTraceQueryParsing.age(text) == nil)
    }

    @Test("ISO 8601 dates with or without fractional seconds, Z or an offset", arguments: [
        ("2025-06-15T15:06:40Z", 1_750_000_000.0),
        ("2025-06-15T15:06:40.250Z", 1_750_000_000.25),
        ("2025-06-15T17:06:40+02:00", 1_750_000_000),
        ("2025-06-15T10:06:40-05:00", 1_750_000_000),
    ])
    func dates(text: String, seconds: TimeInterval) throws {
        let date = try RelayTraceQueryParsing.date(text, parameter: "until", now: Date())
        #expect(abs(date.timeIntervalSince1970 - seconds) < 0.001)
    }

    @Test("a full query")
    func fullQuery() throws {
        let now = Date(timeIntervalSince1970: 1_750_000_000)
        let query = try RelayTraceQueryParsing.query(
            from: [("sender", "a@b"), ("status", "Held"), ("since", "1h"), ("limit", "7"), ("route", ""), ("message_id", "<x@y>")], now: now)
        #expect(throws: RelayTraceParameterError(parameter: "until", reason: "is empty")) {
            try RelayTraceQueryParsing.query(from: [("until", "")], now: now)
        }
        #expect(query == RelayTraceQuery(sender: "a@b", status: .held, since: now.addingTimeInterval(-3600), messageID: "<x@y>", limit: 7))
    }

    @Test("dates go out as UTC with milliseconds and come back equal")
    func dateRoundTrip() {
        let date = Date(timeIntervalSince1970: 1_750_000_000.125)
        #expect(RelayAdminJSON.formatDate(date) == "2025-06-15T15:06:40.125Z")
        #expect(RelayAdminJSON.parseDate("2025-06-15T15:06:40.125Z") == date)
    }

    @Test("token comparison", arguments: [
        ("token", "token", true), ("token", "tokem", false), ("token", "toke", false), ("toke", "token", false), ("", "", true), ("", "x", false),
    ])
    func comparison(lhs: String, rhs: String, equal: Bool) {
        #expect(RelayAdminAuthentication.constantTimeEqual(Array(lhs.utf8), Array(rhs.utf8)) == equal)
    }
}
