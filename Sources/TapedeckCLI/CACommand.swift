import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck ca`: the local certificate authority that TLS interception signs leaf certificates with.
struct CACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Manage the local certificate authority that signs certificates for intercepted TLS.",
        discussion: """
            The CA is created on first use in TAPEDECK_CA_DIR, or tapedeck/ca in the user's data directory \
            ($XDG_DATA_HOME, or ~/.local/share); --ca-dir chooses another. Its key is mode 0600. Clients that \
            should accept intercepted TLS trust its certificate ('tapedeck ca export').
            """,
        subcommands: [Init.self, Path.self, Export.self]
    )

    /// Where the CA lives, shared by the subcommands.
    struct Location: ParsableArguments {
        @Option(
            help: ArgumentHelp(
                "The CA's directory. (default: TAPEDECK_CA_DIR, or the user's data directory)",
                valueName: "dir"
            )
        )
        var caDir: String?

        func authority() throws -> CertificateAuthority {
            try CertificateAuthority.loadOrCreate(in: caDir ?? CertificateAuthority.defaultDirectory())
        }
    }

    /// `tapedeck ca init`: creates the CA unless it exists, and says which.
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the CA unless it exists; print its certificate's path."
        )

        @OptionGroup var location: Location

        func run() throws {
            let directory = location.caDir ?? CertificateAuthority.defaultDirectory()
            let existed = try CertificateAuthority.load(from: directory) != nil
            let authority = try CertificateAuthority.loadOrCreate(in: directory)
            print(authority.certificatePath)
            StandardStreams.writeError(existed ? "the CA already exists\n" : "created a CA in '\(directory)'\n")
        }
    }

    /// `tapedeck ca path`: the CA certificate's path, creating the CA on first use.
    struct Path: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the path of the CA certificate file.")

        @OptionGroup var location: Location

        func run() throws {
            print(try location.authority().certificatePath)
        }
    }

    /// `tapedeck ca export`: the CA certificate in PEM, on stdout or into a file.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the CA certificate in PEM (stdout by default)."
        )

        @OptionGroup var location: Location

        @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file instead of stdout.", valueName: "file"))
        var output: String?

        func run() throws {
            let pem = try location.authority().certificatePEM
            guard let output else { return print(pem) }
            do {
                try Data((pem + "\n").utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
            } catch {
                throw TapedeckError(.outputUnwritable, "cannot write '\(output)': \(error.localizedDescription)")
            }
        }
    }
}
