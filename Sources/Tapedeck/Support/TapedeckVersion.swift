/// The version of Tapedeck, as `tapedeck --version` prints it and tapes record it.
public let tapedeckVersion = "0.1.0"
