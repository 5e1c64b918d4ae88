from django.urls import path

from bench.baseline_app import views

urlpatterns = [
    path("hello", views.hello),
    path("insert", views.InsertApi.as_view()),
    path("read/<int:pk>", views.ReadApi.as_view()),
]
