"""The review page: a FastAPI app over a corpus where a person corrects draft transcripts, keyboard only.

`annotate` finds what to point out in a clip (glossary terms, known misrecognitions, unsure words) and
orders the queue; `app` serves the JSON API, the clips' audio and the static page, and starts uvicorn.
"""
