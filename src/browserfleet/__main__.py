from browserfleet.cli import app

app()
