import sys

from whisper_adapt.cli import main

sys.exit(main())
