from fleetwatch.cli.main import main

main()
