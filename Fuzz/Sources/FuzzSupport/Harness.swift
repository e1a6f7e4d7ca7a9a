import Foundation

@testable import Tapedeck

/// Runs one libFuzzer input through `harness`; a finding stops the process the way a trap does, so that
/// libFuzzer saves the input as a crash.
public func runHarness(_ start: UnsafePointer<UInt8>?, _ count: Int, _ harness: (Data) -> FuzzFinding?) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    if let finding = harness(data) {
        fatalError("fuzz finding: \(finding)")
    }
    return 0
}
