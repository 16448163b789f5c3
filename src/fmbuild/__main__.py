from fmbuild.cli import main

main()
