from chikyu_daq.cli.root import main

main()
