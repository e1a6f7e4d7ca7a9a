import Foundation
import FuzzSupport

@testable import Tapedeck

/// libFuzzer's entry point: the bytes as a YAML and as a JSON config file.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    runHarness(start, count) { ParserFuzzing.configuration($0) }
}
