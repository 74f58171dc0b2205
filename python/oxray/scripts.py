"""The `oxray` command installed with the package: runs the daemon binary."""

import os
import sys

from oxray._private.node import daemon_binary


def main():
    binary = daemon_binary()
    os.execv(binary, [binary, *sys.argv[1:]])


if __name__ == "__main__":
    main()
