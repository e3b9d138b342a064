"""`mirrorline`: the command line, modelled on `mc alias` and `mc replicate`.

Every user mistake ends as one line on stderr and exit status 1 (diff uses 2,
since 1 there means "differences found"); no traceback reaches the user. Every
command goes through `engine.service.Service`, so it is audited and works with
`--connect`.
"""
