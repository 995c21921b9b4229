from chikyu_daq.cli import main

main()
