"""The floor the hot paths are compared with: the least a Django/DRF view can do."""

from django.http import JsonResponse
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.baseline_app.models import BaselineRow


def hello(request):
    return JsonResponse({"ok": True})


class InsertApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def post(self, request):
        row = BaselineRow.objects.create(name=str(request.data.get("name", ""))[:100],
                                         amount=request.data.get("amount", "0"))
        return Response({"id": row.pk, "name": row.name, "amount": str(row.amount)}, status=201)


class ReadApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def get(self, request, pk: int):
        row = BaselineRow.objects.filter(pk=pk).values("id", "name", "amount", "created_at").first()
        if row is None:
            return Response({"error": "not found"}, status=404)
        return Response({**row, "amount": str(row["amount"])})
