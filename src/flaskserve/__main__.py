from flaskserve.cli import main

main()
