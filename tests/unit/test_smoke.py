import base64

from tests.support import png


def test_analyze_image_info(client):
    body = {
        "plugin": "image",
        "tool": "info",
        "inputs": {"image": base64.b64encode(png(40, 30)).decode()},
    }
    response = client.post("/v1/analyze", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["result"]["width"] == 40
