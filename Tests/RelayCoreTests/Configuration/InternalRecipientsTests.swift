import Foundation
import Testing
@testable import RelayCore

@Suite("allowed_recipients: internal")
struct InternalRecipientsTests {
    @Test func internalStandsForTheRouteAcceptedDomains() throws {
        let config = try RelayConfiguration.parse(yaml: ConfigurationFixtures.minimal(
            routeKeys: "accepted_domains: [contoso.com, Contoso.CO.UK]", clientKeys: "allowed_recipients: [internal, partner@fabrikam.com]"), fileName: "test.yaml")
        let client = try #require(config.clients.first)
        let patterns = config.recipientPatterns(for: client)
        #expect(patterns == ["*@contoso.com", "*@contoso.co.uk", "partner@fabrikam.com"])
        #expect(RelayAddressPattern.matches("alice@CONTOSO.com", anyOf: patterns))
        #expect(RelayAddressPattern.matches("partner@fabrikam.com", anyOf: patterns))
        #expect(!RelayAddressPattern.matches("someone@fabrikam.com", anyOf: patterns))
        #expect(!RelayAddressPattern.matches("alice@contoso.com.evil.test", anyOf: patterns))
    }

    @Test func theRouteDomainIsEnough() throws {
        let config = try RelayConfiguration.parse(yaml: ConfigurationFixtures.minimal(
            routeKeys: "domain: contoso.com", clientKeys: "allowed_recipients: [internal]"), fileName: "test.yaml")
        #expect(config.recipientPatterns(for: config.clients[0]) == ["*@contoso.com"])
    }

    @Test func internalWithoutDomainsIsRefused() {
        let error = #expect(throws: RelayConfigurationError.self) {
            try RelayConfiguration.parse(yaml: ConfigurationFixtures.minimal(clientKeys: "allowed_recipients: [internal]"), fileName: "test.yaml")
        }
        #expect(error?.problems.contains { $0.keyPath == "clients[0].allowed_recipients" && $0.reason.contains("domain") } == true, "\(String(describing: error))")
    }

    @Test func internalIsNotASenderPattern() {
        let error = #expect(throws: RelayConfigurationError.self) {
            try RelayConfiguration.parse(yaml: ConfigurationFixtures.minimal(
                routeKeys: "domain: contoso.com", clientKeys: "allowed_senders: [internal]"), fileName: "test.yaml")
        }
        #expect(error?.problems.contains { $0.keyPath == "clients[0].allowed_senders[0]" } == true, "\(String(describing: error))")
    }
}
