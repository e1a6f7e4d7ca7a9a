import Foundation
import FuzzSupport

@testable import Tapedeck

/// Where each input is written as a tape: a directory of this process's own, so parallel fuzzers never share
/// a file.
let inputPath: String = {
    let directory = NSTemporaryDirectory() + "/tapedeck-fuzz-\(getpid())"
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory + "/input.tape"
}()

/// libFuzzer's entry point: the bytes as a tape file, read as the inspect commands and replay read tapes.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    runHarness(start, count) { TapeFuzzing.read($0, at: inputPath) }
}
