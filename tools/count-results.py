#!/usr/bin/env python3
"""Count a subunit v2 stream read on stdin and print the closing line.

Prints ``N passed, N failed, N skipped`` from the real per-test results, and
exits non-zero when a test failed, when no test ran, or when the runner
itself failed (an import error, say, that kept tests from being listed).
"""

import argparse
import sys

import subunit
import testtools


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--extra-failed', type=int, default=0,
                        help='checks outside the stream that failed (lint)')
    parser.add_argument('--runner-rc', type=int, default=0)
    args = parser.parse_args()

    summary = testtools.StreamSummary()
    case = subunit.ByteStreamToStreamResult(sys.stdin.buffer,
                                            non_subunit_name='stdout')
    summary.startTestRun()
    case.run(summary)
    summary.stopTestRun()

    failed = len(summary.errors) + len(summary.failures) + \
        len(summary.unexpectedSuccesses) + args.extra_failed
    skipped = len(summary.skipped)
    passed = summary.testsRun - skipped - (failed - args.extra_failed)
    print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
    if summary.testsRun == 0:
        print('no test ran', file=sys.stderr)
        return 1
    if failed or args.runner_rc:
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
