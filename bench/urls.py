from django.urls import include, path

from payments_site.urls import handler404, handler500  # noqa: F401
from payments_site.urls import urlpatterns as product_urlpatterns

# The product's routes come first, so they resolve exactly as they do in production.
urlpatterns = [*product_urlpatterns, path("_bench/", include("bench.baseline_app.urls"))]
