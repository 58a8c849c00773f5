from couponsvc.entrypoints.cli.main import cli

cli()
