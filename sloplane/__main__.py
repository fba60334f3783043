from sloplane.cli.main import main

main()
