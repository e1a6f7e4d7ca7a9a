import Crypto
import Foundation
import NIOConcurrencyHelpers
import SwiftASN1
import X509

/// Tapedeck's local certificate authority: a CA created on first use in a directory of its own, which signs
/// short-lived leaf certificates for the names clients ask for, so that Tapedeck can terminate their TLS.
///
/// The directory holds `ca-cert.pem` (the certificate clients are told to trust) and `ca-key.pem` (mode 0600); the
/// directory itself is made 0700. Leaves share one key, made per process, and are cached per name.
///
/// ```swift
/// let authority = try CertificateAuthority.loadOrCreate(in: CertificateAuthority.defaultDirectory())
/// let leaf = try authority.leaf(for: "localhost")
/// ```
public final class CertificateAuthority: Sendable {
    /// The CA's certificate.
    public let certificate: Certificate
    /// Where the CA lives.
    public let directory: String
    private let key: P256.Signing.PrivateKey
    /// The key every leaf certifies: one per process, since leaves are made on the fly and never leave it.
    private let leafKey = P256.Signing.PrivateKey()
    private let leaves = NIOLockedValueBox<[String: Leaf]>([:])

    /// A certificate for one name, signed by the CA, with its key.
    public struct Leaf: Sendable {
        /// The leaf certificate.
        public var certificate: Certificate
        /// The leaf's private key.
        public var privateKey: P256.Signing.PrivateKey
        /// The CA certificate that signed it, to send after the leaf.
        public var issuer: Certificate
    }

    /// The file name of the CA certificate in its directory.
    public static let certificateFileName = "ca-cert.pem"
    /// The file name of the CA key in its directory.
    public static let keyFileName = "ca-key.pem"
    /// How long a CA is valid from its creation.
    static let authorityLifetime: TimeInterval = 10 * 365 * 24 * 3600
    /// How long a leaf is valid: short, since it is made again whenever it is needed.
    static let leafLifetime: TimeInterval = 3 * 24 * 3600
    /// How far before now a certificate's validity starts, for clocks a little behind.
    static let clockSkew: TimeInterval = 3600

    /// The path of the CA certificate.
    public var certificatePath: String { directory + "/" + Self.certificateFileName }

    /// The CA's certificate in PEM.
    public var certificatePEM: String {
        get throws { try certificate.serializeAsPEM().pemString }
    }

    /// The directory a CA lives in unless told otherwise: `TAPEDECK_CA_DIR`, or `tapedeck/ca` in the user's data
    /// directory (`$XDG_DATA_HOME`, or `~/.local/share`).
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let directory = environment["TAPEDECK_CA_DIR"], !directory.isEmpty { return directory }
        let data =
            environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.local/share"
        return data + "/tapedeck/ca"
    }

    /// Loads the CA in `directory`, creating it (and the directory, 0700) when it has none.
    ///
    /// - Throws: ``TapedeckError`` when the directory cannot be made or read, or holds a certificate and key that
    ///   cannot be read or do not belong together.
    public static func loadOrCreate(in directory: String) throws -> CertificateAuthority {
        if let existing = try load(from: directory) { return existing }
        return try create(in: directory)
    }

    /// Loads the CA in `directory`; nil when it has none.
    public static func load(from directory: String) throws -> CertificateAuthority? {
        let certificatePath = directory + "/" + certificateFileName
        let keyPath = directory + "/" + keyFileName
        let manager = FileManager.default
        guard manager.fileExists(atPath: certificatePath) || manager.fileExists(atPath: keyPath) else { return nil }
        do {
            let certificate = try Certificate(pemEncoded: try String(contentsOfFile: certificatePath, encoding: .utf8))
            let key = try P256.Signing.PrivateKey(
                pemRepresentation: try String(contentsOfFile: keyPath, encoding: .utf8)
            )
            guard Certificate.PublicKey(key.publicKey) == certificate.publicKey else {
                throw TapedeckError(.invalidArgument, "its key does not belong to its certificate")
            }
            return CertificateAuthority(certificate: certificate, key: key, directory: directory)
        } catch let error as TapedeckError {
            throw TapedeckError(.invalidArgument, "cannot load the CA in '\(directory)': \(error.message)")
        } catch {
            throw TapedeckError(.invalidArgument, "cannot load the CA in '\(directory)': \(Self.reason(error))")
        }
    }

    /// Creates a CA in `directory`: its key is written 0600 before the certificate, so that a directory with a
    /// certificate always has the key that goes with it.
    static func create(in directory: String) throws -> CertificateAuthority {
        do {
            try FileManager.default.createDirectory(
                atPath: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
            let key = P256.Signing.PrivateKey()
            let name = try DistinguishedName {
                OrganizationName("Tapedeck")
                CommonName("Tapedeck local CA")
            }
            let now = Date()
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: Certificate.PublicKey(key.publicKey),
                notValidBefore: now.addingTimeInterval(-clockSkew),
                notValidAfter: now.addingTimeInterval(authorityLifetime),
                issuer: name,
                subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                    SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
                },
                issuerPrivateKey: Certificate.PrivateKey(key)
            )
            try write(key.pemRepresentation, to: directory + "/" + keyFileName, mode: 0o600)
            try write(
                try certificate.serializeAsPEM().pemString,
                to: directory + "/" + certificateFileName,
                mode: 0o644
            )
            return CertificateAuthority(certificate: certificate, key: key, directory: directory)
        } catch let error as TapedeckError {
            throw error
        } catch {
            throw TapedeckError(.invalidArgument, "cannot create a CA in '\(directory)': \(Self.reason(error))")
        }
    }

    private init(certificate: Certificate, key: P256.Signing.PrivateKey, directory: String) {
        self.certificate = certificate
        self.key = key
        self.directory = directory
    }

    /// A leaf certificate for `name` (a DNS name or an IP address), made on first use and then reused while it
    /// is valid for at least another hour.
    public func leaf(for name: String) throws -> Leaf {
        let now = Date()
        if let cached = leaves.withLockedValue({ $0[name] }),
            cached.certificate.notValidAfter > now.addingTimeInterval(Self.clockSkew)
        {
            return cached
        }
        let alternativeName: GeneralName
        if let address = Self.ipAddressBytes(name) {
            alternativeName = .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address)))
        } else {
            alternativeName = .dnsName(name)
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(leafKey.publicKey),
            notValidBefore: now.addingTimeInterval(-Self.clockSkew),
            notValidAfter: min(now.addingTimeInterval(Self.leafLifetime), self.certificate.notValidAfter),
            issuer: self.certificate.subject,
            subject: try DistinguishedName { CommonName(String(name.prefix(64))) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([alternativeName])
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        let leaf = Leaf(certificate: certificate, privateKey: leafKey, issuer: self.certificate)
        leaves.withLockedValue { $0[name] = leaf }
        return leaf
    }

    /// The bytes of an IPv4 or IPv6 address, or nil for a name.
    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// The files where common systems keep their trusted roots, in one PEM bundle each.
    static let systemBundleCandidates = [
        "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem",
        "/etc/ssl/ca-bundle.pem",
    ]

    /// Writes (or rewrites) `ca-bundle.pem` beside the CA: the CA certificate followed by the system's trusted
    /// roots, for variables such as `SSL_CERT_FILE` that replace a client's trust store rather than add to it.
    ///
    /// - Returns: The bundle's path.
    /// - Throws: ``TapedeckError`` when the file cannot be written.
    public func writeTrustBundle() throws -> String {
        let path = directory + "/ca-bundle.pem"
        var text = try certificatePEM
        if !text.hasSuffix("\n") { text += "\n" }
        if let system = Self.systemBundleCandidates.lazy.compactMap({ try? String(contentsOfFile: $0, encoding: .utf8) }
        )
        .first {
            text += system
        }
        // Written beside and renamed into place, so a command reading it meanwhile never sees half of it.
        let temporary = path + ".\(getpid()).tmp"
        unlink(temporary)
        try Self.write(text, to: temporary, mode: 0o644)
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw TapedeckError(.invalidArgument, "cannot write '\(path)': \(String(cString: strerror(errno)))")
        }
        return path
    }

    /// Writes `text` to a new file at `path` with `mode` from its creation (no moment with wider permissions).
    private static func write(_ text: String, to path: String, mode: mode_t) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else {
            throw TapedeckError(.invalidArgument, "cannot write '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else {
                throw TapedeckError(.invalidArgument, "cannot write '\(path)': \(String(cString: strerror(errno)))")
            }
            written += count
        }
    }

    private static func reason(_ error: any Error) -> String {
        if let error = error as? CocoaError, let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
    }
}
