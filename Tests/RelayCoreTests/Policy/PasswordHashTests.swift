import Foundation
import RelayTestSupport
import Testing
@testable import RelayCore

@Suite("Password hashes (scrypt, PHC string)")
struct PasswordHashTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// RFC 7914 §12: raw scrypt known answers (the empty-password vector is
    /// left out: the relay never hashes an empty password).
    @Test(arguments: [
        ("password", "NaCl", 10, 8, 16,
         "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"),
        ("pleaseletmein", "SodiumChloride", 14, 8, 1,
         "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"),
    ])
    func rfc7914Vectors(password: String, salt: String, logN: Int, r: Int, p: Int, expected: String) async throws {
        let derived = try await offCooperativePool {
            try RelayPasswordHash.derive(
                password: Array(password.utf8), salt: Array(salt.utf8),
                parameters: .init(logN: logN, blockSize: r, parallelism: p), length: 64)
        }
        #expect(Self.hex(derived) == expected)
    }

    /// PHC strings computed with Python's hashlib.scrypt (see `pythonAgreesWithFreshHashes` for the live check).
    @Test(arguments: [
        ("correct horse battery staple", "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU"),
        ("pässwörd", "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U"),
    ])
    func knownPHCStrings(password: String, phc: String) async throws {
        let parsed = try RelayPasswordHash(parsing: phc)
        #expect(parsed.encoded == phc, "parsing and encoding round-trip")
        let (right, longer, shorter, remade) = try await offCooperativePool {
            (parsed.verify(Array(password.utf8)), parsed.verify(Array((password + "x").utf8)), parsed.verify(Array(password.utf8.dropLast())),
             try RelayPasswordHash.make(password: Array(password.utf8), salt: parsed.salt, parameters: parsed.parameters).encoded)
        }
        #expect(right)
        #expect(!longer)
        #expect(!shorter)
        #expect(remade == phc, "a fixed salt gives the known answer")
    }

    @Test func freshHashesHaveTheDocumentedShapeAndRandomSalts() throws {
        let first = try RelayPasswordHash.make(password: Array("secret".utf8), parameters: .init(logN: 10, blockSize: 8, parallelism: 1))
        let second = try RelayPasswordHash.make(password: Array("secret".utf8), parameters: .init(logN: 10, blockSize: 8, parallelism: 1))
        #expect(first.salt.count == 16 && first.hash.count == 32)
        #expect(first.salt != second.salt)
        #expect(first.encoded.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        #expect(!first.encoded.split(separator: "$").suffix(2).joined().contains("="), "PHC base64 has no padding")
        #expect(first.verify(Array("secret".utf8)) && second.verify(Array("secret".utf8)))
        #expect(RelayPasswordHash.Parameters.recommended == .init(logN: 15, blockSize: 8, parallelism: 1))
        #expect(!first.description.contains(RelayPasswordHash.base64Encode(first.hash)), "description leaks the hash")
    }

    /// An independent implementation (Python's hashlib.scrypt over OpenSSL)
    /// verifies what this one makes.
    @Test func pythonAgreesWithFreshHashes() async throws {
        let password = "Tr0ub4dor&3 ünïcode"
        let hash = try RelayPasswordHash.make(password: Array(password.utf8))
        let script = """
        import base64, hashlib, hmac, sys
        _, alg, params, salt, digest = sys.argv[1].split("$")
        p = dict(kv.split("=") for kv in params.split(","))
        pad = lambda s: s + "=" * (-len(s) % 4)
        salt, digest = base64.b64decode(pad(salt)), base64.b64decode(pad(digest))
        got = hashlib.scrypt(sys.argv[2].encode(), salt=salt, n=1 << int(p["ln"]), r=int(p["r"]), p=int(p["p"]), dklen=len(digest), maxmem=128 * 1024 * 1024)
        print("match" if alg == "scrypt" and hmac.compare_digest(got, digest) else "mismatch")
        """
        let result = try await ExternalProcess.python(script, [hash.encoded, password], timeout: 60)
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "match", "\(result.stdout) \(result.stderr)")
    }

    @Test(arguments: [
        ("", RelayPasswordHashError.Code.malformed),
        ("secret", .malformed),
        ("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", .unsupportedAlgorithm),
        ("$scrypt$ln=15,r=8$c2FsdHNhbHRzYWx0c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U", .malformed),
        ("$scrypt$r=8,ln=15,p=1$c2FsdHNhbHRzYWx0c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U", .malformed),
        ("$scrypt$ln=015,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U", .malformed),
        ("$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA==$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U", .malformed),
        ("$scrypt$ln=15,r=8,p=1$c2Fsd*NhbHRzYWx0c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U", .malformed),
        ("$scrypt$ln=15,r=8,p=1$c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U", .malformed),
        ("$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$", .malformed),
        ("$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U$", .malformed),
        ("$scrypt$ln=25,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U", .unsupportedParameters),
        ("$scrypt$ln=15,r=64,p=1$c2FsdHNhbHRzYWx0c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U", .unsupportedParameters),
        ("$scrypt$ln=0,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U", .unsupportedParameters),
        ("$scrypt$ln=15,r=8,p=0$c2FsdHNhbHRzYWx0c2FsdA$efbhGsbfTBZ6ulgcuq4KbaaOPqVc1lTDy7l/4UyoD2U", .unsupportedParameters),
    ])
    func refusesMalformedStrings(text: String, code: RelayPasswordHashError.Code) {
        #expect(throws: RelayPasswordHashError(code)) { try RelayPasswordHash(parsing: text) }
    }

    @Test func aHashFileMayEndWithANewline() throws {
        let phc = "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU"
        #expect(try RelayPasswordHash(parsing: phc + "\n").encoded == phc)
    }

    @Test func emptyPasswordsAreNeverHashedNorAccepted() throws {
        #expect(throws: RelayPasswordHashError(.emptyPassword)) { try RelayPasswordHash.make(password: [UInt8]()) }
        let hash = try RelayPasswordHash(parsing: "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU")
        #expect(!hash.verify([UInt8]()))
    }

    @Test(arguments: [
        ([UInt8](), [UInt8](), true),
        ([1, 2, 3], [1, 2, 3], true),
        ([1, 2, 3], [1, 2, 4], false),
        ([0, 2, 3], [1, 2, 3], false),
        ([1, 2, 3], [1, 2], false),
        ([1, 2], [1, 2, 3], false),
    ] as [([UInt8], [UInt8], Bool)])
    func constantTimeComparison(a: [UInt8], b: [UInt8], equal: Bool) {
        #expect(RelayPasswordHash.constantTimeEquals(a, b) == equal)
    }
}
