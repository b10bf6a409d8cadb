from alignguard.cli.app import main

main()
