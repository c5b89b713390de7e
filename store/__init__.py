"""PostgreSQL access and migrations: the only place lastmile's SQL lives."""
