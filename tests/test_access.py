"""Access control, CORS, TLS and the links in answers (issue 13): tokens checked on every resource of both doors,
health open; href from the public URL or an allowed Host only."""
from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from imgsvc.client import ImageClient, Unauthenticated
from imgsvc.rich_status import from_status
from imgsvc.tokens import Tokens
from imgsvc.v1 import image_service_pb2 as pb
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc
from tests.conftest import _Gateway, start_serve

TOKEN = "s3cret-token"
SERVICE = "/arcgis/rest/services/dem/ImageServer"
EXPORT = {"bbox": "384000,4055000,396000,4064000", "size": "32,24", "format": "png"}
# Every REST resource but static files (the map page's scripts); each answers something other than a token refusal
# when given the token (an error of its own included: the token is checked first).
RESOURCES = ["/arcgis/rest/info", "/arcgis/rest/services", SERVICE, f"{SERVICE}/exportImage", f"{SERVICE}/identify",
             f"{SERVICE}/query", f"{SERVICE}/keyProperties", f"{SERVICE}/rasterFunctionInfos", f"{SERVICE}/statistics",
             f"{SERVICE}/histograms", f"{SERVICE}/legend", f"{SERVICE}/multidimensionalInfo", f"{SERVICE}/slices",
             f"{SERVICE}/info", f"{SERVICE}/info/iteminfo", f"{SERVICE}/info/metadata", f"{SERVICE}/map", "/metrics"]
# Every ImageService method with a request it can answer.
METHODS = {"ExportImage": pb.ExportImageRequest(service="dem"),
           "GetServiceInfo": pb.GetServiceInfoRequest(service="dem"),
           "ListServices": pb.ListServicesRequest(),
           "Identify": pb.IdentifyRequest(service="dem", geometry=pb.Point(x=390000, y=4060000)),
           "GetKeyProperties": pb.KeyPropertiesRequest(service="dem"),
           "GetRasterFunctionInfos": pb.RasterFunctionInfosRequest(service="dem"),
           "GetStatistics": pb.StatisticsRequest(service="dem"), "GetHistograms": pb.HistogramsRequest(service="dem"),
           "GetLegend": pb.LegendRequest(service="dem"), "GetItemInfo": pb.ItemInfoRequest(service="dem"),
           "Query": pb.QueryRequest(service="dem"),
           "GetMultidimensionalInfo": pb.MultidimensionalInfoRequest(service="dem"),
           "GetSlices": pb.SlicesRequest(service="dem")}


@pytest.fixture(scope="module", params=["gateway over gRPC", "gateway in process"])
def protected(request, image_service, tmp_path_factory):
    """A gRPC server and a gateway with access control on, in this process; the gRPC target and a client.  The
    gateway calls the server over gRPC (`--gateway-only`) or in process (`imgsvc serve`): the token check is the
    interceptor's either way."""
    from imgsvc.grpc.local import LocalCalls
    from imgsvc.grpc.server import create_server, thread_pool
    from imgsvc.rest.app import GatewaySettings, create_app

    tokens = Tokens(frozenset({TOKEN, "another"}))
    pool = thread_pool(image_service)
    server, port = create_server(image_service, "127.0.0.1:0", tokens=tokens, executor=pool)
    server.start()
    calls = LocalCalls(image_service, pool, tokens) if request.param == "gateway in process" else None
    app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{port}", tokens=tokens,
                                     output_dir=tmp_path_factory.mktemp("protected"),
                                     cors_origins=("https://maps.example.org",)), calls)
    with _Gateway(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield f"127.0.0.1:{port}", client
    server.stop(grace=None)


def error_code(reply: httpx.Response) -> int | None:
    try:
        doc = reply.json()
    except ValueError:
        return None
    return doc.get("error", {}).get("code") if isinstance(doc, dict) else None


def test_the_token_file_takes_one_token_a_line_and_comments(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# the operators' tokens\n\n  alpha  \nbeta # not a comment\n")
    tokens = Tokens.read(path)
    tokens.check("alpha")
    tokens.check("beta # not a comment")
    with pytest.raises(Exception, match="Invalid Token"):
        tokens.check("# the operators' tokens")


@pytest.mark.parametrize("path", RESOURCES)
def test_every_rest_resource_refuses_without_a_token_and_answers_with_one(protected, path):
    _, http = protected
    query = {"f": "json"} if path != "/metrics" else {}
    missing = http.get(path, params=query)
    assert error_code(missing) == 499 and missing.json()["error"]["message"] == "Token Required"
    wrong = http.get(path, params={**query, "token": "guess"})
    assert error_code(wrong) == 498 and wrong.json()["error"]["message"] == "Invalid Token"
    for answered in (http.get(path, params={**query, "token": TOKEN}),
                     http.post(path, data={**query, "token": "another"}) if path != "/metrics" else
                     http.get(path, headers={"Authorization": f"Bearer {TOKEN}"}),
                     http.get(path, params=query, headers={"X-Esri-Authorization": f"Bearer {TOKEN}"})):
        assert answered.status_code == 200 and error_code(answered) not in (498, 499), answered.text[:300]


def test_an_output_file_needs_the_token_as_the_export_did(protected):
    _, http = protected
    doc = http.get(f"{SERVICE}/exportImage", params={**EXPORT, "f": "json", "token": TOKEN}).json()
    href = doc["href"]
    assert error_code(http.get(href)) == 499
    image = http.get(href, params={"token": TOKEN})
    assert image.headers["content-type"] == "image/png"


def test_the_map_page_calls_the_service_with_the_token_it_was_opened_with(protected):
    _, http = protected
    page = http.get(f"{SERVICE}/map", headers={"X-Esri-Authorization": f"Bearer {TOKEN}"}).text
    assert json.loads(re.search(r"const CONFIG = (\{.*\});", page).group(1))["token"] == TOKEN
    assert "options.token = CONFIG.token" in page


def test_the_info_resource_says_tokens_are_on(protected):
    _, http = protected
    info = http.get("/arcgis/rest/info", params={"f": "json", "token": TOKEN}).json()
    assert info["authInfo"]["isTokenBasedSecurity"] is True


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_grpc_method_refuses_without_a_token_and_answers_with_one(protected, method):
    target, _ = protected
    with grpc.insecure_channel(target) as channel:
        call = getattr(pb_grpc.ImageServiceStub(channel), method)
        for metadata, code, message in ((None, 499, "Token Required"),
                                        ((("authorization", "Bearer guess"),), 498, "Invalid Token"),
                                        ((("authorization", "Basic " + TOKEN),), 499, "Token Required")):
            with pytest.raises(grpc.RpcError) as failure:
                call(METHODS[method], metadata=metadata)
            assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert failure.value.details().startswith(message)
            error = from_status(rpc_status.from_call(failure.value), failure.value.code(), failure.value.details())
            assert (error.code, error.message) == (code, message)
        try:
            call(METHODS[method], metadata=(("authorization", f"Bearer {TOKEN}"),))
        except grpc.RpcError as error:  # an answer of the method's own (dem has no slices), not a refusal
            assert error.code() != grpc.StatusCode.UNAUTHENTICATED


def test_the_streamed_export_is_protected_like_every_method(protected, dem_public):
    for target, anonymous_answered in ((protected[0], False), (dem_public[0], True)):
        with grpc.insecure_channel(target) as channel:
            stream = pb_grpc.ImageServiceStub(channel).ExportImageStream
            with pytest.raises(grpc.RpcError) as refused:
                list(stream(METHODS["ExportImage"], metadata=(("authorization", "Bearer guess"),)))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            first = next(stream(METHODS["ExportImage"], metadata=(("authorization", f"Bearer {TOKEN}"),)))
            assert first.WhichOneof("part") == "header"
            if anonymous_answered:
                assert next(stream(METHODS["ExportImage"])).WhichOneof("part") == "header"
            else:
                with pytest.raises(grpc.RpcError) as refused:
                    next(stream(METHODS["ExportImage"]))
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_python_client_sends_its_token(protected):
    target, _ = protected
    with ImageClient(target, token=TOKEN) as client:
        assert client.list_services() == ["dem", "ms"]
    for token, code in ((None, 499), ("guess", 498)):
        with ImageClient(target, token=token) as client, pytest.raises(Unauthenticated) as refused:
            client.list_services()
        assert refused.value.code == code


def test_health_needs_no_token(protected):
    target, _ = protected
    with grpc.insecure_channel(target) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def dem_public(image_service, tmp_path_factory):
    """Access control on with `dem` public and `ms` protected: the gRPC target and an HTTP client."""
    from imgsvc.grpc import create_server
    from imgsvc.rest.app import GatewaySettings, create_app

    tokens = Tokens(frozenset({TOKEN}), public=frozenset({"dem"}))
    server, port = create_server(image_service, "127.0.0.1:0", tokens=tokens)
    server.start()
    app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{port}", tokens=tokens,
                                     output_dir=tmp_path_factory.mktemp("public")))
    with _Gateway(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield f"127.0.0.1:{port}", client
    server.stop(grace=None)


@pytest.mark.parametrize("path", [p for p in RESOURCES if p.startswith(SERVICE)])
def test_a_public_service_answers_without_a_token_and_a_protected_one_does_not(dem_public, path):
    _, http = dem_public
    answered = http.get(path, params={"f": "json"})
    assert answered.status_code == 200 and error_code(answered) not in (498, 499), answered.text[:300]
    assert error_code(http.get(path, params={"f": "json", "token": "guess"})) == 498  # a token given is checked
    protected_path = path.replace("/dem/", "/ms/")
    assert error_code(http.get(protected_path, params={"f": "json"})) == 499
    assert error_code(http.get(protected_path, params={"f": "json", "token": TOKEN})) not in (498, 499)
    # A service that does not exist is refused like a protected one: its absence is not told without a token.
    assert error_code(http.get(path.replace("/dem/", "/nothing/"), params={"f": "json"})) == 499


def test_without_a_token_the_listing_shows_the_public_services_only(dem_public):
    target, http = dem_public
    listing = http.get("/arcgis/rest/services", params={"f": "json"}).json()
    assert [s["name"] for s in listing["services"]] == ["dem"]
    full = http.get("/arcgis/rest/services", params={"f": "json", "token": TOKEN}).json()
    assert [s["name"] for s in full["services"]] == ["dem", "ms"]
    assert http.get("/arcgis/rest/info", params={"f": "json"}).json()["authInfo"]["isTokenBasedSecurity"] is True
    assert error_code(http.get("/metrics")) == 499  # the server's own counters stay behind a token
    with ImageClient(target) as anonymous, ImageClient(target, token=TOKEN) as operator:
        assert anonymous.list_services() == ["dem"]
        assert operator.list_services() == ["dem", "ms"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_grpc_method_of_a_public_service_answers_without_a_token(dem_public, method):
    target, _ = dem_public
    with grpc.insecure_channel(target) as channel:
        call = getattr(pb_grpc.ImageServiceStub(channel), method)
        try:
            call(METHODS[method])
        except grpc.RpcError as error:
            assert error.code() != grpc.StatusCode.UNAUTHENTICATED
        if method == "ListServices":
            return
        on_ms = type(METHODS[method])()
        on_ms.CopyFrom(METHODS[method])
        on_ms.service = "ms"
        with pytest.raises(grpc.RpcError) as refused:
            call(on_ms)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_an_anonymous_export_of_a_public_service_has_an_output_file_it_can_fetch(dem_public):
    _, http = dem_public
    href = http.get(f"{SERVICE}/exportImage", params={**EXPORT, "f": "json"}).json()["href"]
    assert http.get(href).headers["content-type"] == "image/png"
    protected_href = http.get(f"{SERVICE.replace('/dem/', '/ms/')}/exportImage",
                              params={**EXPORT, "bbox": "", "f": "json", "token": TOKEN}).json()["href"]
    assert error_code(http.get(protected_href)) == 499


def test_public_services_need_access_control_on(tmp_path):
    from imgsvc.cli import main

    assert main(["--catalog", str(tmp_path / "c.sqlite"), "serve", "--public", "dem"]) == 2


def test_cors_answers_the_configured_origins_only(protected):
    _, http = protected
    preflight = {"Access-Control-Request-Method": "GET"}
    allowed = http.options("/arcgis/rest/services", headers={"Origin": "https://maps.example.org", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://maps.example.org"
    refused = http.options("/arcgis/rest/services", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in refused.headers


# ---- links --------------------------------------------------------------------------------------------------------

def test_a_host_outside_the_allow_list_never_appears_in_an_answer(http, gateway_url):
    for path, query in ((f"{SERVICE}/exportImage", {**EXPORT, "f": "json"}), (SERVICE, {"f": "html"}),
                        (f"{SERVICE}/map", {}), ("/arcgis/rest/services", {"f": "html"}),
                        (f"{SERVICE}/exportImage", {**EXPORT, "f": "html"})):
        reply = http.get(path, params=query, headers={"Host": "evil.example"})
        assert reply.status_code == 200 and "evil.example" not in reply.text, path
    href = http.get(f"{SERVICE}/exportImage", params={**EXPORT, "f": "json"}, headers={"Host": "evil.example"})
    assert href.json()["href"].startswith(f"{gateway_url}/arcgis/rest/directories/arcgisoutput/")


def test_an_allowed_host_builds_the_links(http, gateway_url):
    port = gateway_url.rsplit(":", 1)[1]
    doc = http.get(f"{SERVICE}/exportImage", params={**EXPORT, "f": "json"}, headers={"Host": f"localhost:{port}"})
    assert doc.json()["href"].startswith(f"http://localhost:{port}/arcgis/rest/directories/arcgisoutput/")


def test_the_public_url_builds_the_links_whatever_the_host(grpc_server, tmp_path):
    from imgsvc.rest.app import GatewaySettings, create_app

    app = create_app(GatewaySettings(grpc_target=grpc_server, output_dir=tmp_path,
                                     public_url="https://images.example.org/gis/"))
    with _Gateway(app) as url:
        doc = httpx.get(f"{url}{SERVICE}/exportImage", params={**EXPORT, "f": "json"},
                        headers={"Host": "evil.example"}).json()
    assert doc["href"].startswith("https://images.example.org/gis/arcgis/rest/directories/arcgisoutput/")


# ---- TLS ----------------------------------------------------------------------------------------------------------

def self_signed(directory) -> tuple:
    """A certificate for localhost and 127.0.0.1 and its key, written as PEM files by the test itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_on_both_doors(catalog_path, tmp_path):
    cert, key = self_signed(tmp_path)
    process, target, url = start_serve(["--catalog", str(catalog_path), "serve", "--grpc", "127.0.0.1:0", "--http",
                                        "127.0.0.1:0", "--output-dir", str(tmp_path / "out"), "--tls-cert", str(cert),
                                        "--tls-key", str(key)])
    try:
        assert url.startswith("https://")
        with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=cert), timeout=60) as https:
            for _ in range(100):
                try:
                    image = https.get(f"{SERVICE}/exportImage", params={**EXPORT, "f": "image"})
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
            assert image.headers["content-type"] == "image/png"  # the gateway reached gRPC over TLS too
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/arcgis/rest/info", timeout=5)
        with ImageClient(target, root_certificates=cert.read_bytes()) as client:
            assert client.list_services() == ["dem", "ms"]
        with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError):
            pb_grpc.ImageServiceStub(channel).ListServices(pb.ListServicesRequest(), timeout=5)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_the_serve_options_refuse_half_a_tls_pair(tmp_path):
    from imgsvc.cli import main

    assert main(["--catalog", str(tmp_path / "c.sqlite"), "serve", "--tls-cert", str(tmp_path / "x.pem")]) == 2


@pytest.mark.parametrize("argv", [["serve", "--output-quota-mb", "0"], ["serve", "--export-queue", "-1"],
                                  ["serve", "--cache-mb", "-5"], ["loadtest", "grpc://127.0.0.1:1", "--retries", "-1"]])
def test_sizes_and_counts_out_of_range_are_refused_naming_the_option(tmp_path, capsys, argv):
    from imgsvc.cli import main

    with pytest.raises(SystemExit) as refused:
        main(["--catalog", str(tmp_path / "c.sqlite"), *argv])
    assert refused.value.code == 2 and argv[-2] in capsys.readouterr().err
