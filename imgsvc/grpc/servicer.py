"""ImageService servicer: convert the request, call the core, convert the reply.  Errors map kind -> status and
travel as the rich status (``imgsvc.rich_status``)."""
from __future__ import annotations

import logging

import grpc

from imgsvc import budget, request_id, resources, rich_status
from imgsvc.errors import ErrorKind, ImgsvcError, internal
from imgsvc.grpc import convert, requests
from imgsvc.service import ExportResult, ImageService
from imgsvc.v1 import image_service_pb2 as pb
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# The door's one kind -> status table; the ArcGIS code and message travel in the status's ErrorInfo.
STATUS_OF_KIND = {
    ErrorKind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
    ErrorKind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorKind.CANCELLED: grpc.StatusCode.CANCELLED,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
}


# ExportImageStream's data messages: well under every message limit, large enough that a message's own cost is small
# beside copying its bytes.
STREAM_CHUNK_BYTES = 1 << 20


def abort(context: grpc.ServicerContext, error: ImgsvcError):
    context.abort_with_status(rich_status.to_status(error, STATUS_OF_KIND[error.kind]))


def _guarded(method):
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except ImgsvcError as error:
            if error.kind is ErrorKind.INTERNAL:  # a failure of the server's own: its text (paths...) stays in the log
                log.error("failure in %s, request id %s: %s", method.__name__, request_id.current(), error.text)
                error = internal()
            abort(context, error)
        except Exception:  # never let a bug take a worker down or leak a traceback (or paths) to the caller
            log.exception("unexpected failure in %s, request id %s", method.__name__, request_id.current())
            abort(context, internal())

    wrapper.__name__ = method.__name__
    return wrapper


class ImageServiceServicer(pb_grpc.ImageServiceServicer):
    def __init__(self, service: ImageService) -> None:
        self.service = service

    @_guarded
    def exported(self, request: pb.ExportImageRequest, context) -> ExportResult:
        return self.service.export_image(requests.export_params(request), self.deadline(context))

    def ExportImage(self, request: pb.ExportImageRequest, context) -> pb.ExportImageResponse:
        return convert.export_response(self.exported(request, context))

    def ExportImageStream(self, request: pb.ExportImageRequest, context):
        # Exported in full before the first message: an error is the call's status, as for ExportImage.
        result = self.exported(request, context)
        data = memoryview(result.encoded.data)
        yield pb.ExportImageChunk(header=convert.export_response(result, with_image=False), total_bytes=len(data))
        for start in range(0, len(data), STREAM_CHUNK_BYTES):
            yield pb.ExportImageChunk(data=bytes(data[start:start + STREAM_CHUNK_BYTES]))

    @staticmethod
    def deadline(context) -> budget.Deadline:
        """The caller's deadline; the work also stops as soon as the caller is gone."""
        return budget.Deadline(context.time_remaining(), gone=lambda: not context.is_active())

    @_guarded
    def GetServiceInfo(self, request: pb.GetServiceInfoRequest, context) -> pb.ServiceInfo:
        return convert.service_info(self.service.service(request.service, requests.rendering_rule(request)),
                                    has_histograms=self.service.has_distributions(request.service),
                                    time_extent=self.service.time_extent(request.service))

    @_guarded
    def ListServices(self, request: pb.ListServicesRequest, context) -> pb.ListServicesResponse:
        return pb.ListServicesResponse(
            services=[pb.ServiceSummary(name=name, type="ImageServer") for name in self.service.service_names()],
            current_version=resources.CURRENT_VERSION, full_version=resources.FULL_VERSION)

    @_guarded
    def Identify(self, request: pb.IdentifyRequest, context) -> pb.IdentifyResponse:
        params = requests.identify_params(request)
        return convert.identify_response(self.service.identify(params))

    @_guarded
    def GetKeyProperties(self, request: pb.KeyPropertiesRequest, context) -> pb.KeyProperties:
        return convert.key_properties(self.service.key_properties(request.service))

    @_guarded
    def GetRasterFunctionInfos(self, request: pb.RasterFunctionInfosRequest, context) -> pb.RasterFunctionInfos:
        return pb.RasterFunctionInfos(raster_function_infos=convert.function_infos(
            self.service.raster_function_templates(request.service)))

    @_guarded
    def GetStatistics(self, request: pb.StatisticsRequest, context) -> pb.StatisticsResponse:
        return convert.statistics(self.service.distributions(request.service, requests.rendering_rule(request),
                                                             request.variable or None))

    @_guarded
    def GetHistograms(self, request: pb.HistogramsRequest, context) -> pb.HistogramsResponse:
        return convert.histograms(self.service.distributions(request.service, requests.rendering_rule(request),
                                                             request.variable or None))

    @_guarded
    def GetLegend(self, request: pb.LegendRequest, context) -> pb.LegendResponse:
        return convert.legend(self.service.legend(request.service, tuple(request.band_ids),
                                                  requests.rendering_rule(request), request.variable or None))

    @_guarded
    def GetItemInfo(self, request: pb.ItemInfoRequest, context) -> pb.ItemInfo:
        return convert.item_info(self.service.item_info(request.service))

    @_guarded
    def Query(self, request: pb.QueryRequest, context) -> pb.QueryResponse:
        return convert.query_response(self.service.query(requests.query_params(request)))

    @_guarded
    def GetMultidimensionalInfo(self, request: pb.MultidimensionalInfoRequest, context) -> pb.MultidimensionalInfo:
        return convert.multidimensional_info(self.service.multidimensional_info(
            request.service, request.return_dimension_values or "always"))

    @_guarded
    def GetSlices(self, request: pb.SlicesRequest, context) -> pb.SlicesResponse:
        return convert.slices_response(self.service.slices(
            request.service, requests.dimension_filters(request.multidimensional_definition)))
