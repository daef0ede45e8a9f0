"""The demo app for a hosted Space (``python app.py``): the same app as ``tpose demo``, on every interface."""

from tpose.demo import DemoOptions, launch_app

if __name__ == "__main__":
    launch_app(DemoOptions(host="0.0.0.0"))
