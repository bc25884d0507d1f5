from whisper_adapt.cli import main

main()
