from sloplane.cli import main

main()
