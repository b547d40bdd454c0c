"""The live web viewer of ``mflow view``: a Bokeh server page fed by a `Stream`.

`imaging` is the data path (pure numpy); `feed` receives the stream in its own thread;
`page` builds one browser's document; `server` runs the Bokeh server on 127.0.0.1.
Everything the page needs (Bokeh's JavaScript included) is served by the server itself.
"""
